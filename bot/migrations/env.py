"""Alembic environment: migrations run on a connection handed in by `bot.db.upgrade`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection
from sqlmodel import SQLModel

import bot.models  # noqa: F401  (registers the tables on SQLModel.metadata)

connection: Connection | None = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("Run migrations with `bot db upgrade`, which supplies the connection.")

context.configure(connection=connection, target_metadata=SQLModel.metadata, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
