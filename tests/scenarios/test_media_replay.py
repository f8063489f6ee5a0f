"""A media turn replayed from every step boundary, as if its worker had died right there: the thread shows the
same messages, each posted once, the transcript is attached once, and the stored media are not doubled."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import Table, func, select

from adapters.console.app import ConsoleSession
from adapters.console.files import file_ref
from adapters.console.inbound import console_thread
from bot.media.models import MEDIA, MEDIA_CHUNKS, MEDIA_TAGS, UTTERANCES
from bot.models import MESSAGES
from bot.runtime import Runtime
from bot.workflows.models import OUTBOX, STEPS
from tests.conftest import post_ids, replay_after, run_of, stream_entries, thread_view

CAPTIONS = (
    "WEBVTT\n\n00:00:01.000 --> 00:00:04.000\n<v Ada>We ship the beta on Friday.\n\n"
    "00:00:05.000 --> 00:00:09.000\n<v Lin>I'll send the release notes on Thursday.\n"
)


async def test_replaying_a_media_turn_from_any_step_doubles_nothing(
    runtime: Runtime, worker: asyncio.Task[None], tmp_path: Path
) -> None:
    captions = tmp_path / "sync.vtt"
    captions.write_text(CAPTIONS)
    thread = console_thread("sync")
    result = await ConsoleSession(runtime, user="ada").send("", "sync", files=(file_ref(captions),), worker=worker)
    assert result.status == "completed"
    run_id = await run_of(runtime, result.message_id)
    steps = await _steps_in_order(runtime, run_id)
    assert steps[:3] == ["context", "f0.progress", "f0.record"]
    expected = await _state(runtime, run_id)
    view = await thread_view(runtime, thread)
    posts = post_ids(await stream_entries(runtime, thread))
    assert view[0].startswith("✅ sync.vtt: digest below")

    for kept in range(len(steps) - 1, -1, -1):
        # What a crash right after the first `kept` steps leaves: later steps unrecorded, the run pending again.
        await replay_after(runtime, run_id, result.message_id, steps[kept:], "processing" if kept else "pending")

        assert await thread_view(runtime, thread) == view, f"replayed after {steps[:kept]}"
        assert post_ids(await stream_entries(runtime, thread)) == posts, f"a second post after {steps[:kept]}"
        assert await _state(runtime, run_id) == expected, f"stored state changed after {steps[:kept]}"


async def _state(rt: Runtime, run_id: int) -> dict[str, object]:
    async with rt.autocommit.connect() as conn:

        async def count(table: Table) -> int:
            return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())

        return {
            "media": (await conn.execute(select(MEDIA.c.id, MEDIA.c.status, MEDIA.c.sha256))).all(),
            "utterances": await count(UTTERANCES),
            "tags": sorted((await conn.execute(select(MEDIA_TAGS.c.tag))).scalars()),
            "chunks": await count(MEDIA_CHUNKS),
            "messages": (await conn.execute(select(MESSAGES.c.role, MESSAGES.c.status).order_by(MESSAGES.c.id))).all(),
            "outbox": sorted((await conn.execute(select(OUTBOX.c.key, OUTBOX.c.state))).all()),
        }


async def _steps_in_order(rt: Runtime, run_id: int) -> list[str]:
    async with rt.autocommit.connect() as conn:
        rows = await conn.execute(
            select(STEPS.c.step_id).where(STEPS.c.run_id == run_id).order_by(STEPS.c.finished_at, STEPS.c.started_at)
        )
        return list(rows.scalars())
