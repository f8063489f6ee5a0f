"""The migrations build exactly the schema the models describe: a model change without its migration fails here."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection
from sqlmodel import SQLModel

import bot.followups.models
import bot.media.models
import bot.models
import bot.workflows.models  # noqa: F401  (register every table on SQLModel.metadata)
from bot.db import create_engine

# Tables owned by libraries, not by our models: APScheduler creates its own with its job store.
FOREIGN_TABLES = {"apscheduler_jobs", "alembic_version"}


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection,
        opts={
            "compare_type": True,
            "include_name": lambda name, kind, _parent: not (kind == "table" and name in FOREIGN_TABLES),
        },
    )
    return list(compare_metadata(context, SQLModel.metadata))


async def test_the_migrated_schema_matches_the_models(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            differences = await conn.run_sync(_differences)
    finally:
        await engine.dispose()
    assert differences == []
