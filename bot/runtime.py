"""The long-lived clients one process shares: database engine, sessions, Redis and the wake-up queue. Built at an
entry point."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cached_property

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.db import autocommit, create_engine, session_factory
from bot.workflows.queue import WakeQueue


def redis_settings(url: str) -> RedisSettings:
    return RedisSettings.from_dsn(url)


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: ArqRedis
    queue: WakeQueue
    # Due times (sleeps, retries, timeouts, reminders) come from here; tests put a FakeClock in.
    clock: Clock = field(default_factory=SystemClock)

    @cached_property
    def autocommit(self) -> AsyncEngine:
        """For single statements on the hot path: no BEGIN/COMMIT round trips."""
        return autocommit(self.engine)


@asynccontextmanager
async def open_runtime(settings: Settings, *, queue: Callable[[ArqRedis], WakeQueue]) -> AsyncIterator[Runtime]:
    """Requires resolved DATABASE_URL and REDIS_URL (see `bot.services.resolve`). `queue` builds the wake-up queue
    on the Redis pool: the composition root picks it (`jobs.queue.open_runtime` does)."""
    engine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
    redis = await create_pool(redis_settings(settings.redis_url))
    try:
        yield Runtime(
            settings=settings, engine=engine, sessions=session_factory(engine), redis=redis, queue=queue(redis)
        )
    finally:
        await redis.aclose()
        await engine.dispose()
