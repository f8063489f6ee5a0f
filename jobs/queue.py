"""The wake-up queue on arq: `ArqWakeQueue` writes arq's own job encoding for `resume_run(run_id, seq)` (job id
`run:{id}:{seq}`) and signals idle workers, in one Redis round trip. The one module that writes arq's format."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import structlog
from arq.connections import ArqRedis
from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from redis.exceptions import RedisError

from bot.config import Settings
from bot.runtime import Runtime
from bot.runtime import open_runtime as open_core_runtime

log = structlog.get_logger(__name__)

QUEUE_NAME = "threadbot:queue"
# Pushed with every wake-up due now; idle workers block on it (see jobs.worker.WakeableWorker).
WAKE_KEY = "threadbot:wake"
RESUME_JOB = "resume_run"


def job_id(run_id: int, seq: int) -> str:
    return f"run:{run_id}:{seq}"


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


class ArqWakeQueue:
    def __init__(self, redis: ArqRedis) -> None:
        self._redis = redis

    async def wake(self, run_id: int, seq: int, wake_at: datetime | None = None) -> bool:
        redis = self._redis
        now_ms = round(time.time() * 1000)
        due_ms = round(wake_at.timestamp() * 1000) if wake_at is not None else now_ms
        deferred = due_ms > now_ms
        score = due_ms if deferred else now_ms
        job = job_id(run_id, seq)
        encoded = serialize_job(RESUME_JOB, (run_id, seq), {}, None, now_ms, serializer=redis.job_serializer)
        keys = (job_key_prefix + job, result_key_prefix + job, QUEUE_NAME, WAKE_KEY)
        args = (score - now_ms + redis.expires_extra_ms, encoded, score, job, "0" if deferred else "1")
        try:
            queued = await redis.execute_command("EVAL", _ENQUEUE, len(keys), *keys, *args)  # type: ignore[no-untyped-call]
        except (OSError, RedisError) as exc:
            log.warning("enqueue failed; the sweeper will retry", run_id=run_id, error=str(exc))
            return False
        return bool(queued)


@asynccontextmanager
async def open_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """The core's runtime with its wake-ups queued on arq: what every process that starts runs opens."""
    async with open_core_runtime(settings, queue=ArqWakeQueue) as runtime:
        yield runtime
