"""The long-lived clients one process shares: database engine, sessions, Redis. Built at an entry point."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cached_property

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.db import autocommit, create_engine, session_factory

QUEUE_NAME = "threadbot:queue"
# Pushed with every enqueued turn; idle workers block on it (see jobs.worker.WakeableWorker).
WAKE_KEY = "threadbot:wake"


def redis_settings(url: str) -> RedisSettings:
    return RedisSettings.from_dsn(url)


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: ArqRedis

    @cached_property
    def autocommit(self) -> AsyncEngine:
        """For single statements on the hot path: no BEGIN/COMMIT round trips."""
        return autocommit(self.engine)


@asynccontextmanager
async def open_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """Requires resolved DATABASE_URL and REDIS_URL (see `bot.services.resolve`)."""
    engine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
    redis = await create_pool(redis_settings(settings.redis_url), default_queue_name=QUEUE_NAME)
    try:
        yield Runtime(settings=settings, engine=engine, sessions=session_factory(engine), redis=redis)
    finally:
        await redis.aclose()
        await engine.dispose()
