"""Recurring schedules. The table is the truth; the leader's APScheduler job store mirrors the active rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Column, DateTime, ForeignKey, Table, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from bot.models import _timestamp


class Schedule(SQLModel, table=True):
    __tablename__ = "schedules"
    __table_args__ = (CheckConstraint("status IN ('active', 'cancelled')", name="ck_schedules_status"),)

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    thread_id: int = Field(sa_column=Column(ForeignKey("threads.id", ondelete="CASCADE"), nullable=False, index=True))
    user_id: str = Field(max_length=128, index=True)
    # What the user wrote ("every Monday 09:00") and what it became (APScheduler trigger arguments).
    spec: str = Field(sa_column=Column(Text, nullable=False))
    trigger: Any = Field(sa_column=Column(JSONB, nullable=False))
    timezone: str = Field(default="UTC", max_length=64)
    text: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(default="active", max_length=16)
    # The command's delivery id: a platform's retry of the same command creates no second schedule.
    dedupe_key: str | None = Field(default=None, max_length=300, unique=True)
    created_at: datetime = _timestamp()
    cancelled_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


SCHEDULES: Table = Schedule.__table__  # type: ignore[attr-defined]
