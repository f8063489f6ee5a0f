"""The sweeper: Postgres says which runs should be moving; this makes sure a job exists for each.

- A `running` run whose lease expired lost its worker (killed, OOM, network split): it gets a new wake-up
  number and job, since arq holds the dead job's id until its timeout.
- An active run overdue by STALE_PENDING_AFTER_S lost its job (Redis flushed or down at enqueue time): the
  same job is queued again (arq ignores it if it still exists); four times as late, under a new number.
Several workers may sweep at once: the updates are atomic and a doubled job finds its number stale.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import delete, func, select, update

from bot.runtime import Runtime
from bot.workflows.models import EVENTS, FINISHED_STATUSES, OUTBOX, RUNS, STEPS, WAITS
from bot.workflows.runs import enqueue_run, wake_due_runs

log = structlog.get_logger(__name__)
r = RUNS.c
BATCH = 500
EVENT_RETENTION = timedelta(days=30)


def _rescue_statements(runtime: Runtime) -> tuple[Any, Any]:
    dead = (
        select(r.id)
        .where(r.status == "running", r.lease_until < func.now())
        .order_by(r.lease_until)
        .limit(BATCH)
        .with_for_update(skip_locked=True)
    )
    rescue = (
        update(RUNS)
        .where(r.id.in_(dead.scalar_subquery()))
        .values(
            status="pending",
            lease_owner=None,
            lease_until=None,
            wake_at=func.now(),
            wake_seq=r.wake_seq + 1,
            rescues=r.rescues + 1,
            updated_at=func.now(),
        )
        .returning(r.id, r.wake_seq)
    )
    # A run whose workers keep dying even while it reports its failure is abandoned: it cannot be told to anyone.
    abandon = (
        update(RUNS)
        .where(
            r.status == "running",
            r.lease_until < func.now(),
            r.rescues > runtime.settings.workflow_max_rescues + 1,
        )
        .values(
            status="failed",
            error="abandoned: its workers kept dying",
            lease_owner=None,
            lease_until=None,
            finished_at=func.now(),
            updated_at=func.now(),
        )
        .returning(r.id)
    )
    return abandon, rescue


async def rescue_dead(runtime: Runtime) -> int:
    """Hand the runs of dead workers (leases run out) to live ones; the quick part of a sweep, run every third of
    a lease so a killed worker's reply moves on within seconds. Returns how many were queued again."""
    abandon, rescue = _rescue_statements(runtime)
    async with runtime.autocommit.connect() as conn:
        abandoned = (await conn.execute(abandon)).scalars().all()
        rescued = (await conn.execute(rescue)).all()
    _log_rescues(abandoned, rescued)
    return await _queue(runtime, rescued)


def _log_rescues(abandoned: Sequence[int], rescued: Sequence[Any]) -> None:
    if abandoned:
        log.error("abandoned runs whose workers kept dying", runs=list(abandoned))
    if rescued:
        log.warning("rescued runs whose worker died", runs=[row.id for row in rescued])


async def _queue(runtime: Runtime, rows: Iterable[Any]) -> int:
    queued = 0
    # A set: a run both renumbered and overdue in this pass is queued once.
    for run_id, seq in {(row.id, row.wake_seq) for row in rows}:
        if await enqueue_run(runtime, run_id, seq):
            queued += 1
    return queued


async def sweep(runtime: Runtime) -> int:
    stale = timedelta(seconds=runtime.settings.stale_pending_after_s)
    abandon, rescue = _rescue_statements(runtime)
    lost = (
        select(r.id)
        .where(
            r.status.in_(("pending", "sleeping", "waiting")),
            r.wake_at < func.now() - stale * 4,
            (r.lease_until.is_(None)) | (r.lease_until < func.now()),
        )
        .order_by(r.wake_at)
        .limit(BATCH)
        .with_for_update(skip_locked=True)
    )
    renumber = (
        update(RUNS)
        .where(r.id.in_(lost.scalar_subquery()))
        .values(wake_seq=r.wake_seq + 1, updated_at=func.now())
        .returning(r.id, r.wake_seq)
    )
    overdue = (
        select(r.id, r.wake_seq)
        .where(
            r.status.in_(("pending", "sleeping", "waiting")),
            r.wake_at < func.now() - stale,
            (r.lease_until.is_(None)) | (r.lease_until < func.now()),
        )
        .order_by(r.wake_at)  # oldest first, so a backlog cannot starve anyone
        .limit(BATCH)
    )
    async with runtime.autocommit.connect() as conn:
        abandoned = (await conn.execute(abandon)).scalars().all()
        rescued = (await conn.execute(rescue)).all()
        renumbered = (await conn.execute(renumber)).all()
        due = (await conn.execute(overdue)).all()
    _log_rescues(abandoned, rescued)
    queued = await _queue(runtime, (*rescued, *renumbered, *due))
    if queued:
        log.warning("re-queued runs", count=queued)
    await wake_due_runs(runtime)
    await _resend_lost_finishes(runtime)
    await _purge_old_events(runtime)
    await prune_finished_runs(runtime)
    return queued


async def _resend_lost_finishes(runtime: Runtime) -> None:
    """A child run that finished while its `run.finished` event could not be stored leaves its parent's `invoke`
    waiting: send the event again (its dedupe key makes a second send harmless)."""
    from bot.workflows.events import send_event

    child = RUNS.alias("child")
    query = (
        select(child.c.id, child.c.status, child.c.output, child.c.error)
        .join(WAITS, WAITS.c.match["run_id"].as_integer() == child.c.id)
        .where(
            WAITS.c.state == "pending",
            WAITS.c.event_name == "run.finished",
            child.c.status.in_(FINISHED_STATUSES),
            child.c.finished_at < func.now() - timedelta(seconds=runtime.settings.stale_pending_after_s),
        )
        .limit(BATCH)
    )
    async with runtime.autocommit.connect() as conn:
        rows = (await conn.execute(query)).all()
    for run_id, status, output, error in rows:
        log.warning("re-sending a finished run's event its parent still waits for", run_id=run_id)
        await send_event(
            runtime,
            "run.finished",
            {"run_id": run_id, "status": status, "output": output, "error": error},
            dedupe_key=f"finished:{run_id}",
        )


async def _purge_old_events(runtime: Runtime) -> None:
    """Events older than EVENT_RETENTION: a new wait only looks back to its run's previous step, so these can no
    longer match anything (an `invoke`'s wait, which looks back further, is registered right after its start)."""
    old = select(EVENTS.c.id).where(EVENTS.c.created_at < func.now() - EVENT_RETENTION).limit(5000)
    async with runtime.autocommit.connect() as conn:
        await conn.execute(delete(EVENTS).where(EVENTS.c.id.in_(old.scalar_subquery())))


async def prune_finished_runs(runtime: Runtime) -> int:
    """Forget what finished runs no longer need: their step results (transcripts and prompts among them), waits
    and outbox rows, RUN_RETENTION_DAYS after they finished; a batch per sweep. Returns how many runs."""
    days = runtime.settings.run_retention_days
    if days <= 0:
        return 0
    old = (
        select(r.id)
        .where(
            r.status.in_(FINISHED_STATUSES),
            r.pruned_at.is_(None),
            r.finished_at < func.now() - timedelta(days=days),
        )
        .order_by(r.finished_at)
        .limit(BATCH)
    )
    async with runtime.engine.begin() as conn:
        ids = list((await conn.execute(old.with_for_update(skip_locked=True))).scalars())
        if not ids:
            return 0
        for table in (STEPS, WAITS, OUTBOX):
            await conn.execute(delete(table).where(table.c.run_id.in_(ids)))
        await conn.execute(update(RUNS).where(r.id.in_(ids)).values(pruned_at=func.now()))
    log.info("pruned finished runs", count=len(ids), retention_days=days)
    return len(ids)
