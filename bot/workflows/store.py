"""The engine's statements on `workflow_runs` and `workflow_steps`. Each is one statement on an autocommit
connection, and every write made while a run executes is conditional on holding its lease: a worker that lost
the lease (cancelled, or presumed dead and replaced) can no longer change the run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Boolean, Interval, Select, bindparam, case, exists, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert

from bot.runtime import Runtime
from bot.workflows.models import ACTIVE_STATUSES, RUNS, STEPS, WAITS

r, s, w = RUNS.c, STEPS.c, WAITS.c


@dataclass(frozen=True, slots=True)
class StepRecord:
    status: str
    output: Any
    error: str | None
    attempts: int
    due_at: datetime | None


@dataclass(frozen=True, slots=True)
class ClaimedRun:
    run_id: int
    workflow: str
    input: dict[str, Any]
    attempts: int
    rescues: int
    progressed_at: datetime
    steps: dict[str, StepRecord]


def _claim_statement() -> Select[Any]:
    claimed = (
        update(RUNS)
        .where(
            r.id == bindparam("run_id"),
            r.wake_seq == bindparam("seq"),
            r.status.in_(ACTIVE_STATUSES),
            (r.lease_until.is_(None)) | (r.lease_until < func.now()),
            # Due by the runtime's clock (a sleep's or retry's due time) or by the database's (a wake-up "now"
            # written in SQL); the two agree but for skew, unless a test has moved its FakeClock ahead.
            (r.wake_at.is_(None)) | (r.wake_at <= func.greatest(func.now(), bindparam("now", type_=r.wake_at.type))),
        )
        .values(
            status="running",
            lease_owner=bindparam("b_owner"),
            lease_until=func.now() + bindparam("lease", type_=Interval),
            attempts=r.attempts + 1,
            updated_at=func.now(),
        )
        .returning(r.id, r.workflow, r.input, r.attempts, r.rescues, r.progressed_at)
        .cte("claimed")
    )
    steps = (
        select(
            func.coalesce(
                func.jsonb_object_agg(
                    s.step_id,
                    func.jsonb_build_array(s.status, s.output, s.error, s.attempts, s.due_at),
                ).filter(s.step_id.is_not(None)),
                literal({}, type_=STEPS.c.output.type),
            )
        )
        .where(s.run_id == bindparam("run_id"))
        .scalar_subquery()
        .label("steps")
    )
    return select(claimed, steps)


# Built once: constructing a statement costs more CPU than running it, and these run several times per turn.
# Bind parameters are named b_* where a column of that name is set (SQLAlchemy reserves those names).
_CLAIM = _claim_statement()


async def claim(runtime: Runtime, run_id: int, seq: int, owner: str, lease_s: float) -> ClaimedRun | None:
    """Take the run's lease if this job is its current wake-up, it is due and nobody holds it; load its steps."""
    params = {
        "run_id": run_id,
        "seq": seq,
        "b_owner": owner,
        "lease": timedelta(seconds=lease_s),
        "now": runtime.clock.now(),
    }
    async with runtime.autocommit.connect() as conn:
        row = (await conn.execute(_CLAIM, params)).first()
    if row is None:
        return None
    records = {
        step_id: StepRecord(
            status, output, error, attempts, datetime.fromisoformat(due_at) if due_at is not None else None
        )
        for step_id, (status, output, error, attempts, due_at) in row.steps.items()
    }
    return ClaimedRun(row.id, row.workflow, row.input, row.attempts, row.rescues, row.progressed_at, records)


def _save_statement() -> Select[Any]:
    finished = bindparam("finished", type_=Boolean)
    lease = (
        update(RUNS)
        .where(r.id == bindparam("run_id"), r.lease_owner == bindparam("owner"), r.status == "running")
        .values(
            lease_until=func.now() + bindparam("lease", type_=Interval),
            updated_at=func.now(),
            progressed_at=case((finished, func.clock_timestamp()), else_=r.progressed_at),
        )
        .returning(r.id, r.progressed_at)
        .cte("lease")
    )
    columns = ("kind", "status", "output", "error", "attempts", "due_at")
    values = {name: bindparam(f"b_{name}", type_=STEPS.c[name].type) for name in columns}
    finished_at = case((finished, func.now()), else_=None)
    # When the step began (its first attempt, for a retried one): set on the first save only.
    started_at = func.coalesce(bindparam("b_started_at", type_=STEPS.c.started_at.type), func.now())
    memo = (
        insert(STEPS)
        .from_select(
            ["run_id", "step_id", *columns, "finished_at", "started_at"],
            select(lease.c.id, bindparam("step_id"), *values.values(), finished_at, started_at),
        )
        .on_conflict_do_update(index_elements=["run_id", "step_id"], set_={**values, "finished_at": finished_at})
        .returning(STEPS.c.run_id)
        .cte("memo")
    )
    return select(lease.c.progressed_at).where(exists(select(memo.c.run_id)))


_SAVE = _save_statement()


async def save_step(
    runtime: Runtime,
    run_id: int,
    owner: str,
    lease_s: float,
    step_id: str,
    *,
    kind: str,
    status: str,
    output: Any = None,
    error: str | None = None,
    attempts: int = 1,
    due_at: datetime | None = None,
    started_at: datetime | None = None,
) -> datetime | None:
    """Memoize a step and renew the lease, in one statement. Returns the run's new `progressed_at`, or None if
    the lease is no longer ours (the caller must stop). `started_at`: when the step began, if before now (kept from
    the first save of the step on)."""
    params = {
        "run_id": run_id,
        "owner": owner,
        "lease": timedelta(seconds=lease_s),
        "finished": status in ("completed", "failed"),
        "step_id": step_id,
        "b_kind": kind,
        "b_status": status,
        "b_output": output,
        "b_error": error,
        "b_attempts": attempts,
        "b_due_at": due_at,
        "b_started_at": started_at,
    }
    async with runtime.autocommit.connect() as conn:
        row = (await conn.execute(_SAVE, params)).first()
    return None if row is None else row.progressed_at


async def park(
    runtime: Runtime, run_id: int, owner: str, status: str, wake_at: datetime | None, wait_step: str | None = None
) -> tuple[int, datetime | None] | None:
    """Release the lease and park the run until `wake_at` (None: until an event wakes it). If the wait it parks
    on was settled while the run was still running, it is due at once. Returns (wake_seq, wake_at), or None if
    the lease was no longer ours."""
    settled = exists(select(w.run_id).where(w.run_id == run_id, w.step_id == wait_step, w.state != "pending"))
    due = case((literal(wait_step is not None) & settled, func.now()), else_=literal(wake_at, RUNS.c.wake_at.type))
    async with runtime.autocommit.connect() as conn:
        row = (
            await conn.execute(
                update(RUNS)
                .where(r.id == run_id, r.lease_owner == owner, r.status == "running")
                .values(
                    status=status,
                    wake_at=due,
                    wake_seq=r.wake_seq + 1,
                    lease_owner=None,
                    lease_until=None,
                    updated_at=func.now(),
                )
                .returning(r.wake_seq, r.wake_at)
            )
        ).first()
        if row is None:
            return None
        if wait_step is None or status != "waiting" or (row.wake_at is not None and row.wake_at <= runtime.clock.now()):
            return row.wake_seq, row.wake_at
        # The check above read the wait as of this statement's start: an event that settled it while the run was
        # still `running`, and committed in the meantime, found nothing to wake. A fresh look closes that gap.
        woke = (
            await conn.execute(
                update(RUNS)
                .where(r.id == run_id, r.status == "waiting", r.wake_seq == row.wake_seq, settled)
                .values(wake_at=func.now(), wake_seq=r.wake_seq + 1, updated_at=func.now())
                .returning(r.wake_seq, r.wake_at)
            )
        ).first()
    latest = woke if woke is not None else row
    return latest.wake_seq, latest.wake_at


_FINISH = (
    update(RUNS)
    .where(r.id == bindparam("run_id"), r.lease_owner == bindparam("owner"), r.status == "running")
    .values(
        status=bindparam("b_status"),
        output=bindparam("b_output", type_=RUNS.c.output.type),
        error=bindparam("b_error"),
        lease_owner=None,
        lease_until=None,
        wake_at=None,
        finished_at=func.now(),
        updated_at=func.now(),
    )
    .returning(r.parent_run_id)
)


async def finish(
    runtime: Runtime, run_id: int, owner: str, status: str, output: Any = None, error: str | None = None
) -> tuple[bool, int | None]:
    """End the run if we still hold it. Returns (whether it was ours, its parent run if any)."""
    params = {"run_id": run_id, "owner": owner, "b_status": status, "b_output": output, "b_error": error}
    async with runtime.autocommit.connect() as conn:
        row = (await conn.execute(_FINISH, params)).first()
    return (False, None) if row is None else (True, row.parent_run_id)


async def release(runtime: Runtime, run_id: int, owner: str) -> None:
    """Give the lease back after an infrastructure failure, so a retry need not wait for it to expire."""
    async with runtime.autocommit.connect() as conn:
        await conn.execute(
            update(RUNS)
            .where(r.id == run_id, r.lease_owner == owner, r.status == "running")
            .values(status="pending", lease_owner=None, lease_until=None, updated_at=func.now())
        )
