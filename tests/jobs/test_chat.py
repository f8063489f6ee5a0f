"""The chat-turn job's retry policy and the sweep that re-queues turns whose job was lost."""

from __future__ import annotations

import asyncio

import pytest

from adapters.console.inbound import console_thread, to_event
from bot.config import Settings
from bot.intake import accept
from bot.models import Message
from bot.runtime import Runtime
from jobs.chat import backoff_s
from tests.conftest import thread_view, wait_for


@pytest.mark.parametrize(("attempt", "low", "high"), [(1, 0.8, 1.2), (2, 1.6, 2.4), (3, 3.2, 4.8), (10, 50, 50)])
def test_backoff_doubles_with_jitter_and_is_capped(attempt: int, low: float, high: float) -> None:
    settings = Settings(_env_file=None, retry_base_delay_s=1.0, retry_max_delay_s=50.0)  # type: ignore[call-arg]
    for _ in range(20):
        assert low <= backoff_s(attempt, settings) <= high


def test_backoff_honours_retry_after() -> None:
    settings = Settings(_env_file=None, retry_base_delay_s=1.0)  # type: ignore[call-arg]
    assert backoff_s(1, settings, retry_after_s=30.0) == 30.0


async def test_turn_whose_job_was_lost_is_answered_after_the_sweep(runtime: Runtime, settings: Settings) -> None:
    accepted = await accept(runtime, to_event("are you there?", "lost", user="ada"))
    await runtime.redis.flushdb()  # Redis lost the job; Postgres still has the pending message
    runtime.settings = settings.model_copy(update={"stale_pending_after_s": 0.0})
    # The worker's start-up sweep finds the pending turn and queues it again.
    from adapters.console.app import in_process_worker

    async with in_process_worker(runtime.settings):
        await wait_for(lambda: _answered(runtime, accepted.message_id))
    assert len(await thread_view(runtime, console_thread("lost"))) == 1


async def _answered(rt: Runtime, message_id: int) -> bool:
    async with rt.sessions() as session:
        row = await session.get(Message, message_id)
        return row is not None and row.status == "completed"


async def test_sweep_does_not_double_a_turn_whose_job_is_queued(runtime: Runtime, settings: Settings) -> None:
    from jobs.chat import requeue_stale_turns

    await accept(runtime, to_event("hi", "t", user="ada"))
    deps = type("Deps", (), {"runtime": runtime})()
    runtime.settings = settings.model_copy(update={"stale_pending_after_s": 0.0})
    await asyncio.sleep(0.01)
    assert await requeue_stale_turns({"deps": deps}) == 0, "arq already holds the job id"
