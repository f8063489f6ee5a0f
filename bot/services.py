"""Resolving where the services are: the configured URLs, or embedded Postgres and Redis under DATA_DIR."""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog

from bot.config import Settings
from bot.db import create_engine, require_current_schema, upgrade
from bot.embedded import EmbeddedPostgres, EmbeddedRedis

log = structlog.get_logger(__name__)


@dataclass
class Services:
    """Settings with every URL filled in, and the embedded servers this process started (to stop them)."""

    settings: Settings
    embedded: list[EmbeddedPostgres | EmbeddedRedis] = field(default_factory=list)

    @property
    def uses_embedded_database(self) -> bool:
        return any(isinstance(server, EmbeddedPostgres) for server in self.embedded)

    def stop_started(self) -> None:
        for server in self.embedded:
            if server.started_here:
                server.stop()


def start_services(settings: Settings) -> Services:
    """Start (or reuse) embedded Postgres and Redis for whichever URL is empty."""
    updates: dict[str, str] = {}
    embedded: list[EmbeddedPostgres | EmbeddedRedis] = []
    if not settings.database_url:
        postgres = EmbeddedPostgres(settings.data_dir)
        updates["database_url"] = postgres.start()
        embedded.append(postgres)
    if not settings.redis_url:
        redis = EmbeddedRedis(settings.data_dir)
        updates["redis_url"] = redis.start()
        embedded.append(redis)
    return Services(settings=settings.model_copy(update=updates), embedded=embedded)


async def prepare_database(services: Services) -> None:
    """The embedded database is ours to migrate; a real one is migrated by the operator (`bot db upgrade`)."""
    engine = create_engine(services.settings.database_url, pool_size=1)
    try:
        if services.uses_embedded_database:
            await upgrade(engine)
        else:
            await require_current_schema(engine)
    finally:
        await engine.dispose()
