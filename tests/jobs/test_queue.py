"""Queueing a run's wake-up against real Redis: arq's job, written once, and a wake-up signal only when it is due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from arq.jobs import deserialize_job

from bot.runtime import Runtime
from bot.workflows.runs import enqueue_run
from jobs.queue import QUEUE_NAME, RESUME_JOB, WAKE_KEY


async def _signals(runtime: Runtime) -> int:
    # redis-py types llen() for both its sync and async clients; the command itself is plain.
    return int(await runtime.redis.execute_command("LLEN", WAKE_KEY))


async def test_a_wake_up_is_queued_once_as_arqs_job_and_signals_a_worker(runtime: Runtime) -> None:
    assert await enqueue_run(runtime, 7, 2) is True
    assert await enqueue_run(runtime, 7, 2) is False, "the same id is refused while its job is held"
    redis = runtime.redis
    assert [m.decode() for m in await redis.zrange(QUEUE_NAME, 0, -1)] == ["run:7:2"]
    assert await _signals(runtime) == 1
    job = deserialize_job(await redis.get("arq:job:run:7:2"))
    assert (job.function, job.args, job.kwargs) == (RESUME_JOB, (7, 2), {})
    assert 0 < await redis.pttl("arq:job:run:7:2") <= redis.expires_extra_ms


async def test_a_deferred_wake_up_waits_for_its_time_without_a_signal(runtime: Runtime) -> None:
    due = datetime.now(UTC) + timedelta(hours=1)
    assert await enqueue_run(runtime, 8, 0, due) is True
    redis = runtime.redis
    score = await redis.zscore(QUEUE_NAME, "run:8:0")
    assert score is not None
    assert abs(score - due.timestamp() * 1000) < 5
    assert await _signals(runtime) == 0
    # Kept until an hour past its time, as arq keeps a deferred job.
    assert await redis.pttl("arq:job:run:8:0") > 3600 * 1000


async def test_a_finished_jobs_result_still_blocks_its_id(runtime: Runtime) -> None:
    await runtime.redis.set("arq:result:run:9:0", b"done")
    assert await enqueue_run(runtime, 9, 0) is False
    assert await runtime.redis.zcard(QUEUE_NAME) == 0
