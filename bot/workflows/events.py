"""Events and the runs that wait for them.

No event may be missed between a run deciding to wait and its wait being stored. Both sides write first and
look second, each in its own committed statement: the sender stores the event, then resolves pending waits; the
waiter stores its wait, then scans events since it decided to wait. Whichever looks second sees the other's row,
and a wait's state leaves `pending` in a single conditional UPDATE, so if both see each other only one wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import BigInteger, DateTime, Select, String, and_, bindparam, case, func, null, select, update
from sqlalchemy.dialects.postgresql import JSONB, insert

from bot.runtime import Runtime
from bot.workflows.models import EVENTS, RUNS, WAITS
from bot.workflows.runs import enqueue_run

log = structlog.get_logger(__name__)
e, w, r = EVENTS.c, WAITS.c, RUNS.c


@dataclass(frozen=True, slots=True)
class Sent:
    event_id: int
    woken_runs: tuple[int, ...]
    consumed: bool
    duplicate: bool = False


def _resolve_statement() -> Select[Any]:
    """Settle the pending waits an event satisfies and wake their runs, in one statement. Built once and run with
    the event's parameters (typed, so asyncpg binds each one: untyped, it refused some as missing)."""
    matched = (
        update(WAITS)
        .where(
            w.state == "pending",
            w.event_name == bindparam("b_name", type_=String),
            bindparam("b_data", type_=JSONB).contains(w.match),
            w.since <= bindparam("b_created_at", type_=DateTime(timezone=True)),
        )
        .values(state="matched", event_id=bindparam("b_event_id", type_=BigInteger))
        .returning(w.run_id, w.consumes)
        .cte("matched")
    )
    # Every matched run's row is updated (and so locked), not only waiting ones: a run that is parking right now
    # then either parks first, and this update sees it `waiting` (Postgres re-reads a row changed under it), or
    # parks after this commits and finds its wait settled on its own re-check (store.park).
    waiting = r.status == "waiting"
    woken = (
        update(RUNS)
        .where(r.id.in_(select(matched.c.run_id)))
        .values(
            wake_at=case((waiting, func.now()), else_=r.wake_at),
            wake_seq=case((waiting, r.wake_seq + 1), else_=r.wake_seq),
            updated_at=func.now(),
        )
        .returning(r.id, case((waiting, r.wake_seq), else_=null()).label("wake_seq"))
        .cte("woken")
    )
    return select(matched.c.run_id, matched.c.consumes, woken.c.wake_seq).outerjoin(
        woken, woken.c.id == matched.c.run_id
    )


_RESOLVE = _resolve_statement()


# Built once; run with parameters (named b_*: SQLAlchemy reserves the names of the columns it sets).
_INSERT = (
    insert(EVENTS)
    .values(event_name=bindparam("b_name"), data=bindparam("b_data", type_=JSONB), dedupe_key=bindparam("b_key"))
    .on_conflict_do_nothing(index_elements=["dedupe_key"])
    .returning(e.id, e.created_at)
)


async def send_event(runtime: Runtime, name: str, data: dict[str, Any], *, dedupe_key: str | None = None) -> Sent:
    """Store an event and wake the runs waiting for it. A repeated `dedupe_key` sends nothing new."""
    async with runtime.autocommit.connect() as conn:
        row = (await conn.execute(_INSERT, {"b_name": name, "b_data": data, "b_key": dedupe_key})).first()
        if row is None:
            event_id = (await conn.execute(select(e.id).where(e.dedupe_key == dedupe_key))).scalar_one()
            consumed = (
                await conn.execute(select(func.count()).where(w.event_id == event_id, w.consumes.is_(True)))
            ).scalar_one()
            return Sent(event_id, (), consumed=bool(consumed), duplicate=True)
        event_id = row.id
        params = {"b_name": name, "b_data": data, "b_created_at": row.created_at, "b_event_id": event_id}
        matches = (await conn.execute(_RESOLVE, params)).all()
    for match in matches:
        if match.wake_seq is not None:  # a run still `running` picks the match up itself when it parks (see suspend)
            await enqueue_run(runtime, match.run_id, match.wake_seq)
    runs = tuple(match.run_id for match in matches)
    if matches:
        log.info("event matched waits", event_name=name, event_id=event_id, runs=list(runs))
    return Sent(event_id, runs, consumed=any(match.consumes for match in matches))


@dataclass(frozen=True, slots=True)
class WaitOutcome:
    state: str  # pending | matched | timed_out | cancelled
    event: dict[str, Any] | None
    expires_at: datetime | None


async def register_wait(
    runtime: Runtime,
    run_id: int,
    step_id: str,
    name: str,
    match: dict[str, Any],
    *,
    since: datetime,
    expires_at: datetime | None,
    consumes: bool,
    now: datetime,
) -> WaitOutcome:
    """Store the wait (once), then settle it if it can be: a matching event since `since`, or its timeout (due by
    `now`, the runtime clock's: timeouts are due times, like sleeps)."""
    async with runtime.autocommit.connect() as conn:
        await conn.execute(
            insert(WAITS)
            .values(
                run_id=run_id,
                step_id=step_id,
                event_name=name,
                match=match,
                since=since,
                expires_at=expires_at,
                consumes=consumes,
                state="pending",
            )
            .on_conflict_do_nothing(index_elements=["run_id", "step_id"])
        )
        earliest = (
            select(e.id)
            .where(
                e.event_name == name,
                e.created_at >= w.since,
                e.data.contains(w.match),
            )
            .order_by(e.id)
            .limit(1)
            .scalar_subquery()
        )
        # Settle in one statement: take an earlier event if there is one, else time out if due.
        await conn.execute(
            update(WAITS)
            .where(w.run_id == run_id, w.step_id == step_id, w.state == "pending")
            .values(
                state=case(
                    (earliest.is_not(None), "matched"),
                    (and_(w.expires_at.is_not(None), w.expires_at <= now), "timed_out"),
                    else_="pending",
                ),
                event_id=earliest,
            )
        )
        return await read_wait(conn, run_id, step_id)


async def read_wait(conn: Any, run_id: int, step_id: str) -> WaitOutcome:
    row = (
        await conn.execute(
            select(w.state, w.expires_at, e.id, e.event_name, e.data, e.created_at)
            .outerjoin(EVENTS, e.id == w.event_id)
            .where(w.run_id == run_id, w.step_id == step_id)
        )
    ).one()
    state, expires_at, event_id, event_name, data, created_at = row
    event = None
    if state == "matched" and event_id is not None:
        event = {"id": event_id, "name": event_name, "data": data, "at": created_at.isoformat()}
    return WaitOutcome(state, event, expires_at)


async def time_out_wait(runtime: Runtime, run_id: int, step_id: str, now: datetime) -> WaitOutcome:
    """The run's side of a due timeout: `timed_out` unless an event got there first."""
    async with runtime.autocommit.connect() as conn:
        await conn.execute(
            update(WAITS)
            .where(
                w.run_id == run_id,
                w.step_id == step_id,
                w.state == "pending",
                w.expires_at.is_not(None),
                w.expires_at <= now,
            )
            .values(state="timed_out")
        )
        return await read_wait(conn, run_id, step_id)
