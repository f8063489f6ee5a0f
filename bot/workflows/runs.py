"""Starting runs and queueing their wake-up jobs.

A job is `resume_run(run_id, seq)` with job id `run:{id}:{seq}`. Each time a run is parked (sleep, wait, retry
backoff) or rescued by the sweeper, `wake_seq` grows, so the next job has a fresh id: arq refuses an id it still
holds (in progress, or its result kept), and a stale job finds its number outdated and does nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from redis.exceptions import RedisError
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert

from bot.runtime import WAKE_KEY, Runtime
from bot.workflows.models import ACTIVE_STATUSES, RUNS, STEPS, WAITS

log = structlog.get_logger(__name__)

RESUME_JOB = "resume_run"
r = RUNS.c


def job_id(run_id: int, seq: int) -> str:
    return f"run:{run_id}:{seq}"


@dataclass(frozen=True, slots=True)
class Started:
    run_id: int
    created: bool


# arq's enqueue_job in one round trip instead of four (WATCH, EXISTS, MULTI/EXEC, then the wake-up): the same
# keys and job encoding, checked and written atomically by Redis itself. An id whose job or result is still held is
# refused, as arq does. With no delay, the wake-up list gets a signal so an idle worker picks the job up at once;
# the trim bounds the list while no worker reads it.
_ENQUEUE = """
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then return 0 end
redis.call('PSETEX', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
if ARGV[5] == '1' then
  redis.call('LPUSH', KEYS[4], 1)
  redis.call('LTRIM', KEYS[4], 0, 999)
end
return 1
"""


async def enqueue_run(runtime: Runtime, run_id: int, seq: int, wake_at: datetime | None = None) -> bool:
    """Queue the run's wake-up. A Redis failure is logged and left to the sweeper: Postgres holds the run."""
    redis = runtime.redis
    now_ms = round(time.time() * 1000)
    due_ms = round(wake_at.timestamp() * 1000) if wake_at is not None else now_ms
    deferred = due_ms > now_ms
    score = due_ms if deferred else now_ms
    job = job_id(run_id, seq)
    encoded = serialize_job(RESUME_JOB, (run_id, seq), {}, None, now_ms, serializer=redis.job_serializer)
    keys = (job_key_prefix + job, result_key_prefix + job, redis.default_queue_name, WAKE_KEY)
    args = (score - now_ms + redis.expires_extra_ms, encoded, score, job, "0" if deferred else "1")
    try:
        queued = await redis.execute_command("EVAL", _ENQUEUE, len(keys), *keys, *args)  # type: ignore[no-untyped-call]
    except (OSError, RedisError) as exc:
        log.warning("enqueue failed; the sweeper will retry", run_id=run_id, error=str(exc))
        return False
    return bool(queued)


async def start_run(
    runtime: Runtime,
    workflow: str,
    input: dict[str, Any],
    *,
    dedupe_key: str | None = None,
    parent_run_id: int | None = None,
    thread_id: int | None = None,
    user_id: str | None = None,
    description: str = "",
    wake_at: datetime | None = None,
) -> Started:
    """Create a run (or find the one with this `dedupe_key`) and queue it."""
    statement = (
        insert(RUNS)
        .values(
            workflow=workflow,
            input=input,
            status="pending",
            dedupe_key=dedupe_key,
            parent_run_id=parent_run_id,
            thread_id=thread_id,
            user_id=user_id,
            description=description,
            wake_seq=0,
            wake_at=wake_at or func.now(),
            attempts=0,
            rescues=0,
        )
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(r.id)
    )
    async with runtime.autocommit.connect() as conn:
        run_id = (await conn.execute(statement)).scalar_one_or_none()
        if run_id is None:
            existing = (await conn.execute(select(r.id).where(r.dedupe_key == dedupe_key))).scalar_one()
            return Started(existing, created=False)
    await enqueue_run(runtime, run_id, 0, wake_at)
    log.info("run started", run_id=run_id, workflow=workflow)
    return Started(run_id, created=True)


async def cancel_run(runtime: Runtime, run_id: int, reason: str = "cancelled") -> bool:
    """Cancel an unfinished run. A worker running it stops at its next step boundary. True if it was active."""
    async with runtime.engine.begin() as conn:
        cancelled = (
            await conn.execute(
                update(RUNS)
                .where(r.id == run_id, r.status.in_(ACTIVE_STATUSES))
                .values(status="cancelled", error=reason, finished_at=func.now(), updated_at=func.now())
                .returning(r.id)
            )
        ).scalar_one_or_none()
        if cancelled is not None:
            await conn.execute(
                update(WAITS).where(WAITS.c.run_id == run_id, WAITS.c.state == "pending").values(state="cancelled")
            )
    if cancelled is not None:
        log.info("run cancelled", run_id=run_id, reason=reason)
    return cancelled is not None


async def retry_run(runtime: Runtime, run_id: int) -> bool:
    """Operator's retry of a failed or cancelled run: it resumes from its last finished step. Failed steps are
    forgotten, so they run again."""

    async with runtime.engine.begin() as conn:
        row = (
            await conn.execute(
                update(RUNS)
                .where(r.id == run_id, r.status.in_(("failed", "cancelled")), r.pruned_at.is_(None))
                .values(
                    status="pending",
                    error=None,
                    finished_at=None,
                    wake_at=func.now(),
                    wake_seq=r.wake_seq + 1,
                    lease_owner=None,
                    lease_until=None,
                    updated_at=func.now(),
                )
                .returning(r.wake_seq)
            )
        ).scalar_one_or_none()
        if row is None:
            return False
        await conn.execute(STEPS.delete().where(STEPS.c.run_id == run_id, STEPS.c.status.in_(("failed", "retrying"))))
    await enqueue_run(runtime, run_id, row)
    return True
