"""A chat turn replayed after every step boundary, as if its worker had died right there: the user sees the
same posts, each once, and the stored conversation does not change."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import delete, func, select, update

from adapters.console.app import ConsoleSession
from adapters.console.inbound import console_thread
from bot.models import MESSAGES
from bot.runtime import Runtime
from bot.workflows.models import OUTBOX, RUNS, STEPS
from bot.workflows.runs import enqueue_run
from sandbox.openai_server import StandInLLM, Step
from tests.conftest import stream_entries, thread_view, wait_for

STEP_ORDER = ("context", "reply", "store")
REPLY = "A long answer. " * 40


@pytest.mark.parametrize("kept", range(len(STEP_ORDER) + 1))
async def test_replay_after_each_step_boundary_posts_nothing_new(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM, kept: int
) -> None:
    stand_in.script(Step(reply=REPLY), Step(reply=REPLY))
    thread = console_thread("replay")
    result = await ConsoleSession(runtime, user="ada").send("Explain at length.", "replay")
    assert result.status == "completed"
    before_view = await thread_view(runtime, thread)
    before_posts = _posts(await stream_entries(runtime, thread))
    run_id = await _run_of(runtime, result.message_id)

    # The state a crash right after the first `kept` steps leaves: later steps' results are not stored, the
    # run is back to pending, and the message is as the last kept step left it.
    async with runtime.autocommit.connect() as conn:
        await conn.execute(delete(STEPS).where(STEPS.c.run_id == run_id, STEPS.c.step_id.in_(STEP_ORDER[kept:])))
        message_status = "completed" if kept == len(STEP_ORDER) else ("processing" if kept else "pending")
        await conn.execute(update(MESSAGES).where(MESSAGES.c.id == result.message_id).values(status=message_status))
        seq = (
            await conn.execute(
                update(RUNS)
                .where(RUNS.c.id == run_id)
                .values(status="pending", wake_seq=RUNS.c.wake_seq + 1, wake_at=func.now(), finished_at=None)
                .returning(RUNS.c.wake_seq)
            )
        ).scalar_one()
    await enqueue_run(runtime, run_id, seq)
    await wait_for(lambda: _run_status_is(runtime, run_id, "completed"))

    assert await thread_view(runtime, thread) == before_view == [REPLY]
    assert _posts(await stream_entries(runtime, thread)) == before_posts, "no second post, whatever was replayed"
    async with runtime.autocommit.connect() as conn:
        rows = (await conn.execute(select(MESSAGES.c.role, MESSAGES.c.status).order_by(MESSAGES.c.id))).all()
        outbox = (await conn.execute(select(OUTBOX.c.key, OUTBOX.c.state))).all()
    assert [tuple(row) for row in rows] == [("user", "completed"), ("assistant", "completed")]
    assert outbox == [(f"{run_id}:reply:0", "sent")]
    expected_requests = 2 if kept < 2 else 1  # the model is asked again only if the reply step was lost
    assert len(stand_in.chat_requests()) == expected_requests


def _posts(entries: list[dict[str, str]]) -> list[str]:
    return [entry["id"] for entry in entries if entry["op"] == "post"]


async def _run_of(rt: Runtime, message_id: int) -> int:
    async with rt.autocommit.connect() as conn:
        return int((await conn.execute(select(MESSAGES.c.run_id).where(MESSAGES.c.id == message_id))).scalar_one())


async def _run_status_is(rt: Runtime, run_id: int, status: str) -> bool:
    async with rt.autocommit.connect() as conn:
        return (await conn.execute(select(RUNS.c.status).where(RUNS.c.id == run_id))).scalar_one() == status
