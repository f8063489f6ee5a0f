"""Starting, cancelling and retrying runs, and queueing their wake-ups (through `runtime.queue`).

Each time a run is parked (sleep, wait, retry backoff) or rescued by the sweeper, `wake_seq` grows, so its next
wake-up is a new one: the queue refuses an id it still holds, and a stale wake-up finds its number outdated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert

from bot.runtime import Runtime
from bot.workflows import data
from bot.workflows.models import ACTIVE_STATUSES, RUNS, STEPS, WAITS
from bot.workflows.registry import Workflow

log = structlog.get_logger(__name__)
InputT = TypeVar("InputT")

r = RUNS.c


@dataclass(frozen=True, slots=True)
class Started:
    run_id: int
    created: bool


async def enqueue_run(runtime: Runtime, run_id: int, seq: int, wake_at: datetime | None = None) -> bool:
    """Queue the run's wake-up. A failure is left to the sweeper: Postgres holds the run. `wake_at` is read on the
    runtime's clock; the queue defers by the wall clock."""
    return await runtime.queue.wake(run_id, seq, runtime.clock.to_wall(wake_at) if wake_at is not None else None)


async def wake_due_runs(runtime: Runtime, batch: int = 500) -> int:
    """Wake at once the parked runs that are due by the runtime's clock but not yet by the database's: their queued
    wake-ups wait for a wall-clock time that a test's FakeClock has jumped past. With the system clock there are
    none, but for skew, so the sweeper's call costs one query. Returns how many were woken."""
    due = (
        select(r.id)
        .where(
            r.status.in_(("pending", "sleeping", "waiting")),
            r.wake_at <= runtime.clock.now(),
            r.wake_at > func.now(),
            (r.lease_until.is_(None)) | (r.lease_until < func.now()),
        )
        .order_by(r.wake_at)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    # A new wake-up number: the job already queued for the old one is deferred, and the queue refuses its id.
    renumber = (
        update(RUNS)
        .where(r.id.in_(due.scalar_subquery()))
        .values(wake_seq=r.wake_seq + 1, updated_at=func.now())
        .returning(r.id, r.wake_seq)
    )
    async with runtime.autocommit.connect() as conn:
        woken = (await conn.execute(renumber)).all()
    for run_id, seq in woken:
        await enqueue_run(runtime, run_id, seq)
    return len(woken)


async def start_run(
    runtime: Runtime,
    workflow: Workflow[InputT] | str,
    input: InputT | Mapping[str, Any],
    *,
    dedupe_key: str | None = None,
    parent_run_id: int | None = None,
    thread_id: int | None = None,
    user_id: str | None = None,
    description: str = "",
    wake_at: datetime | None = None,
) -> Started:
    """Create a run (or find the one with this `dedupe_key`) and queue it. Given the workflow itself, the input is
    checked against its input type first (`InvalidWorkflowInput` if it does not fit); given only its name, the input
    is stored as JSON and checked when the run starts."""
    name, stored = (
        (workflow, data.to_json(input)) if isinstance(workflow, str) else (workflow.name, workflow.encode(input))
    )
    statement = (
        insert(RUNS)
        .values(
            workflow=name,
            input=stored,
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
    log.info("run started", run_id=run_id, workflow=name)
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
