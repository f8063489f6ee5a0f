"""The chat-turn job's retry policy and the sweep that re-queues turns whose job was lost."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from adapters.console.inbound import console_thread, to_event
from bot.config import Settings
from bot.errors import TransientUpstreamError
from bot.events import PostedMessage
from bot.intake import accept, enqueue_turn
from bot.models import Message
from bot.runtime import QUEUE_NAME, Runtime
from bot.turns import TurnDeps, fail_turn
from jobs.chat import backoff_s, requeue_stale_turns
from sandbox.openai_server import StandInLLM
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


async def test_sweep_requeues_only_turns_whose_job_is_gone(runtime: Runtime, settings: Settings) -> None:
    accepted = await accept(runtime, to_event("hi", "t", user="ada"))
    deps = TurnDeps(runtime=runtime, llm=None, platforms={})  # type: ignore[arg-type]
    runtime.settings = settings.model_copy(update={"stale_pending_after_s": 0.0})
    await asyncio.sleep(0.01)
    assert await requeue_stale_turns({"deps": deps}) == 0, "arq still holds the job: nothing to add"
    await runtime.redis.delete(f"arq:job:{accepted.job_id}")
    await runtime.redis.zrem(QUEUE_NAME, accepted.job_id)
    assert await requeue_stale_turns({"deps": deps}) == 1
    assert await runtime.redis.zscore(QUEUE_NAME, accepted.job_id) is not None


async def test_a_turn_is_not_failed_until_the_user_has_been_told(runtime: Runtime, stand_in: StandInLLM) -> None:
    """If the error cannot be posted, the turn stays unfinished (for the sweep), not `failed` to nobody."""

    class DownPlatform:
        name, max_message_chars, min_edit_interval_s = "console", 1000, 0.0

        async def post_message(self, *args: object, **kwargs: object) -> PostedMessage:
            raise TransientUpstreamError("console", "platform down")

        async def edit_message(self, *args: object) -> None:
            raise TransientUpstreamError("console", "platform down")

    accepted = await accept(runtime, to_event("hello", "t", user="ada"))
    deps = TurnDeps(runtime=runtime, llm=None, platforms={"console": DownPlatform()})  # type: ignore[arg-type]
    with pytest.raises(TransientUpstreamError):
        await fail_turn(deps, accepted.message_id, "sorry", "detail")
    async with runtime.sessions() as session:
        row = await session.get(Message, accepted.message_id)
        assert row is not None
        assert row.status == "pending"


async def test_a_turn_whose_jobs_keep_dying_ends_with_an_error(runtime: Runtime, worker: asyncio.Task[None]) -> None:
    accepted = await accept(runtime, to_event("hello", "stuck", user="ada"))
    await runtime.redis.flushdb()
    async with runtime.engine.begin() as conn:  # as if every earlier job had been killed mid-turn
        await conn.execute(text("UPDATE messages SET attempts = 50 WHERE id = :id"), {"id": accepted.message_id})
    await enqueue_turn(runtime, accepted.message_id, accepted.job_id)
    await wait_for(lambda: _status_is(runtime, accepted.message_id, "failed"))
    assert await thread_view(runtime, console_thread("stuck")) == [
        "⚠️ I couldn't answer: I tried several times and could not answer this."
    ]


async def _status_is(rt: Runtime, message_id: int, status: str) -> bool:
    async with rt.sessions() as session:
        row = await session.get(Message, message_id)
        return row is not None and row.status == status
