"""Tables of the durable-workflow engine: runs, their memoized steps, event waits, events, and the outbox of
side effects. Postgres holds the whole state of a run; Redis only carries the wake-up jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Column, DateTime, Index, Integer, Table, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from bot.models import _timestamp

RUN_STATUSES = ("pending", "running", "sleeping", "waiting", "completed", "failed", "cancelled")
ACTIVE_STATUSES = ("pending", "running", "sleeping", "waiting")
FINISHED_STATUSES = ("completed", "failed", "cancelled")


def _json(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(JSONB, nullable=nullable))


def _moment() -> Any:
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


class WorkflowRun(SQLModel, table=True):
    """One execution of a workflow. `wake_seq` numbers its wake-up jobs: a job carries the number it was queued
    with, and only the current one may claim the run, so a stale or doubled job is a no-op."""

    __tablename__ = "workflow_runs"
    __table_args__ = (
        CheckConstraint(f"status IN {RUN_STATUSES!r}", name="ck_workflow_runs_status"),
        # The sweeper's query: active runs by wake-up time.
        Index("ix_workflow_runs_due", "status", "wake_at", postgresql_where=f"status IN {ACTIVE_STATUSES!r}"),
        Index("ix_workflow_runs_thread", "thread_id", "id"),
        Index("ix_workflow_runs_user", "user_id", "id"),
        # The sweeper's retention pass: finished runs whose steps are still kept, oldest first.
        Index(
            "ix_workflow_runs_prunable",
            "finished_at",
            postgresql_where=f"status IN {FINISHED_STATUSES!r} AND pruned_at IS NULL",
        ),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    workflow: str = Field(max_length=64)
    input: Any = _json(nullable=False)
    status: str = Field(default="pending", max_length=16)
    # Starting a run twice with the same key (an event delivered twice, a replayed `invoke`) yields one run.
    dedupe_key: str | None = Field(default=None, max_length=300, unique=True)
    parent_run_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    thread_id: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    user_id: str | None = Field(default=None, max_length=128)
    description: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    wake_seq: int = 0
    wake_at: datetime | None = _moment()
    lease_owner: str | None = Field(default=None, max_length=200)
    lease_until: datetime | None = _moment()
    # Moves forward with each finished step: an event newer than this is one a new wait must still see.
    progressed_at: datetime = _timestamp()
    attempts: int = 0
    # Times the sweeper found the run's lease expired (its worker died): bounded, so a run that kills every
    # worker that touches it ends instead of looping.
    rescues: int = 0
    output: Any = _json()
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()
    finished_at: datetime | None = _moment()
    # Set when RUN_RETENTION_DAYS removed the run's steps, waits and outbox rows: the run stays listed, but can
    # no longer be retried (a replay without its outbox could post twice).
    pruned_at: datetime | None = _moment()


class WorkflowStep(SQLModel, table=True):
    """A step's memoized outcome. `completed` returns `output` on replay; `failed` re-raises `error`; `retrying`
    and `sleeping` keep the attempt count and the due time across crashes."""

    __tablename__ = "workflow_steps"
    __table_args__ = (
        CheckConstraint("status IN ('completed', 'failed', 'retrying', 'sleeping')", name="ck_workflow_steps_status"),
    )

    run_id: int = Field(sa_column=Column(BigInteger, primary_key=True))
    step_id: str = Field(primary_key=True, max_length=200)
    kind: str = Field(max_length=16)
    status: str = Field(max_length=16)
    output: Any = _json()
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    attempts: int = 0
    due_at: datetime | None = _moment()
    started_at: datetime = _timestamp()
    finished_at: datetime | None = _moment()


class WorkflowWait(SQLModel, table=True):
    """A run waiting for an event. Its state moves from `pending` exactly once, to `matched` (by the event's
    sender or by the wait's own scan of earlier events) or to `timed_out` (by the run): one outcome."""

    __tablename__ = "workflow_waits"
    __table_args__ = (
        CheckConstraint("state IN ('pending', 'matched', 'timed_out', 'cancelled')", name="ck_workflow_waits_state"),
        Index("ix_workflow_waits_pending", "event_name", postgresql_where="state = 'pending'"),
    )

    run_id: int = Field(sa_column=Column(BigInteger, primary_key=True))
    step_id: str = Field(primary_key=True, max_length=200)
    event_name: str = Field(max_length=100)
    match: Any = _json(nullable=False)
    # Events at or after this moment satisfy the wait, including ones sent before the wait was registered.
    since: datetime = _timestamp()
    expires_at: datetime | None = _moment()
    # A consuming wait takes the event for itself: a user's answer to a question is not also a new chat turn.
    consumes: bool = False
    state: str = Field(default="pending", max_length=16)
    event_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    created_at: datetime = _timestamp()


class WorkflowEvent(SQLModel, table=True):
    __tablename__ = "workflow_events"
    __table_args__ = (Index("ix_workflow_events_name_created", "event_name", "created_at"),)

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    event_name: str = Field(max_length=100)
    data: Any = _json(nullable=False)
    dedupe_key: str | None = Field(default=None, max_length=300, unique=True)
    created_at: datetime = _timestamp()


class OutboxEntry(SQLModel, table=True):
    """A side effect leaving the process (a post, an upload), keyed by run and step. `intent` is written before
    the call and `sent` after it: a replay finds `sent` and skips, or finds `intent` and asks the platform to look
    for the message before posting again."""

    __tablename__ = "outbox"
    __table_args__ = (CheckConstraint("state IN ('intent', 'sent')", name="ck_outbox_state"),)

    key: str = Field(primary_key=True, max_length=300)
    run_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True, index=True))
    platform: str = Field(max_length=32)
    state: str = Field(default="intent", max_length=16)
    message_id: str | None = Field(default=None, max_length=128)
    # What the platform noted before its last call (a Slack upload's file id), for a replay to look by.
    note: str | None = Field(default=None, max_length=128)
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()


RUNS: Table = WorkflowRun.__table__  # type: ignore[attr-defined]
STEPS: Table = WorkflowStep.__table__  # type: ignore[attr-defined]
WAITS: Table = WorkflowWait.__table__  # type: ignore[attr-defined]
EVENTS: Table = WorkflowEvent.__table__  # type: ignore[attr-defined]
OUTBOX: Table = OutboxEntry.__table__  # type: ignore[attr-defined]
