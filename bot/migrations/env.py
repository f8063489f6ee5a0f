"""Alembic environment: migrations run on a connection handed in by `bot.db.upgrade`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection
from sqlmodel import SQLModel

import bot.costs.models
import bot.followups.models
import bot.media.models
import bot.models
import bot.workflows.models  # noqa: F401  (these register the tables on SQLModel.metadata)

connection: Connection | None = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("Run migrations with `bot db upgrade`, which supplies the connection.")


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    # APScheduler's job store table is created by migration 0002 but has no model: autogenerate leaves it be.
    return not (type_ == "table" and name == "apscheduler_jobs")


context.configure(
    connection=connection, target_metadata=SQLModel.metadata, compare_type=True, include_name=include_name
)
with context.begin_transaction():
    context.run_migrations()
