"""A chat turn replayed after every step boundary, as if its worker had died right there: the user sees the
same posts, each once, and the stored conversation does not change."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from adapters.console.app import ConsoleSession
from adapters.console.inbound import console_thread
from bot.models import MESSAGES
from bot.runtime import Runtime
from bot.workflows.models import OUTBOX
from sandbox.openai_server import StandInLLM, Step
from tests.conftest import post_ids, replay_after, run_of, stream_entries, thread_view

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
    before_posts = post_ids(await stream_entries(runtime, thread))
    run_id = await run_of(runtime, result.message_id)

    # The state a crash right after the first `kept` steps leaves: later steps' results are not stored, the
    # run is back to pending, and the message is as the last kept step left it.
    message_status = "completed" if kept == len(STEP_ORDER) else ("processing" if kept else "pending")
    await replay_after(runtime, run_id, result.message_id, STEP_ORDER[kept:], message_status)

    assert await thread_view(runtime, thread) == before_view == [REPLY]
    assert post_ids(await stream_entries(runtime, thread)) == before_posts, "no second post, whatever was replayed"
    async with runtime.autocommit.connect() as conn:
        rows = (await conn.execute(select(MESSAGES.c.role, MESSAGES.c.status).order_by(MESSAGES.c.id))).all()
        outbox = (await conn.execute(select(OUTBOX.c.key, OUTBOX.c.state))).all()
    assert [tuple(row) for row in rows] == [("user", "completed"), ("assistant", "completed")]
    assert outbox == [(f"{run_id}:reply:0", "sent")]
    expected_requests = 2 if kept < 2 else 1  # the model is asked again only if the reply step was lost
    assert len(stand_in.chat_requests()) == expected_requests
