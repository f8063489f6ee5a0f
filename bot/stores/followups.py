"""Follow-ups: recurring `schedules` rows, and a user's scheduled items in a workspace (their schedules, and their
reminder and follow-up runs), to count, list and cancel."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert

from bot.events import ThreadRef
from bot.followups.models import SCHEDULES
from bot.followups.workflows import FOLLOWUP, REMINDER
from bot.models import THREADS, WORKSPACES
from bot.runtime import Runtime
from bot.workflows.models import ACTIVE_STATUSES, RUNS

r, s, t, w = RUNS.c, SCHEDULES.c, THREADS.c, WORKSPACES.c

# The runs a user scheduled with /remind and /followup (recurring ones are `schedules` rows instead).
SCHEDULED_WORKFLOWS = (REMINDER, FOLLOWUP)


@dataclass(frozen=True, slots=True)
class StoredSchedule:
    status: str
    user_id: str
    text: str
    thread_id: int
    thread: ThreadRef


# Built once; the scheduler leader reads the first every sync interval, the second on every tick.
_ACTIVE = select(s.id, s.trigger, s.created_at).where(s.status == "active")
_SCHEDULE = (
    select(
        s.status,
        s.user_id,
        s.text,
        s.thread_id,
        t.platform,
        w.external_id.label("workspace_id"),
        t.channel_id,
        t.thread_key,
    )
    .join(THREADS, t.id == s.thread_id)
    .join(WORKSPACES, w.id == t.workspace_id)
    .where(s.id == bindparam("schedule_id"))
)


def active_schedules(conn: Connection) -> Sequence[Row[int, Any, datetime]]:
    """The active schedules' `id`, `trigger` and `created_at`, on the leader's synchronous connection."""
    return conn.execute(_ACTIVE).all()


async def load_schedule(runtime: Runtime, schedule_id: int) -> StoredSchedule | None:
    async with runtime.autocommit.connect() as conn:
        row = (await conn.execute(_SCHEDULE, {"schedule_id": schedule_id})).first()
    if row is None:
        return None
    thread = ThreadRef(row.platform, row.workspace_id, row.channel_id, row.thread_key)
    return StoredSchedule(row.status, row.user_id, row.text, row.thread_id, thread)


async def create_schedule(
    runtime: Runtime,
    *,
    thread_id: int,
    user_id: str,
    spec: str,
    trigger: dict[str, Any],
    timezone: str,
    text: str,
    dedupe_key: str,
) -> int:
    """The schedule's id; a repeated `dedupe_key` (a platform's retry of the command) finds the one created before."""
    async with runtime.autocommit.connect() as conn:
        created = (
            await conn.execute(
                insert(SCHEDULES)
                .values(
                    thread_id=thread_id,
                    user_id=user_id,
                    spec=spec,
                    trigger=trigger,
                    timezone=timezone,
                    text=text,
                    status="active",
                    dedupe_key=dedupe_key,
                )
                .on_conflict_do_nothing(index_elements=["dedupe_key"])
                .returning(s.id)
            )
        ).scalar_one_or_none()
        if created is None:
            created = (await conn.execute(select(s.id).where(s.dedupe_key == dedupe_key))).scalar_one()
    return int(created)


def _in_workspace(where: ThreadRef) -> ColumnElement[bool]:
    """Rows of threads in the platform and workspace of `where`."""
    return (t.platform == where.platform) & (w.external_id == where.workspace_id)


async def count_active(runtime: Runtime, where: ThreadRef, user_id: str) -> int:
    """The user's active reminder and follow-up runs plus active schedules in the workspace of `where`."""
    runs = (
        select(func.count())
        .select_from(RUNS)
        .join(THREADS, t.id == r.thread_id)
        .join(WORKSPACES, w.id == t.workspace_id)
        .where(_in_workspace(where), r.user_id == user_id, r.workflow.in_(SCHEDULED_WORKFLOWS))
        .where(r.status.in_(ACTIVE_STATUSES))
    )
    schedules = (
        select(func.count())
        .select_from(SCHEDULES)
        .join(THREADS, t.id == s.thread_id)
        .join(WORKSPACES, w.id == t.workspace_id)
        .where(_in_workspace(where), s.user_id == user_id, s.status == "active")
    )
    async with runtime.autocommit.connect() as conn:
        return int((await conn.execute(runs)).scalar_one()) + int((await conn.execute(schedules)).scalar_one())


@dataclass(frozen=True, slots=True)
class Scheduled:
    """What is scheduled: active runs (`id`, `workflow`, `status`, `description`) and schedules (`id`, `spec`,
    `text`), oldest first."""

    runs: Sequence[Row[int, str, str, str]]
    schedules: Sequence[Row[int, str, str]]


async def list_scheduled(runtime: Runtime, where: ThreadRef, user_id: str, *, here: bool) -> Scheduled:
    """Everyone's items in the thread of `where` if `here`, else the user's in its workspace."""
    runs = (
        select(r.id, r.workflow, r.status, r.description)
        .join(THREADS, t.id == r.thread_id)
        .join(WORKSPACES, w.id == t.workspace_id)
        .where(_in_workspace(where), r.workflow.in_(SCHEDULED_WORKFLOWS), r.status.in_(ACTIVE_STATUSES))
        .order_by(r.id)
    )
    schedules = (
        select(s.id, s.spec, s.text)
        .join(THREADS, t.id == s.thread_id)
        .join(WORKSPACES, w.id == t.workspace_id)
        .where(_in_workspace(where), s.status == "active")
        .order_by(s.id)
    )
    if here:
        scope = (t.channel_id == where.channel_id) & (t.thread_key == where.thread_key)
        runs, schedules = runs.where(scope), schedules.where(scope)
    else:
        runs, schedules = runs.where(r.user_id == user_id), schedules.where(s.user_id == user_id)
    async with runtime.autocommit.connect() as conn:
        return Scheduled((await conn.execute(runs)).all(), (await conn.execute(schedules)).all())


async def owns_run(runtime: Runtime, where: ThreadRef, user_id: str, run_id: int) -> bool:
    """Whether `run_id` is a reminder or follow-up the user scheduled in the workspace of `where` (in any state)."""
    query = (
        select(r.id)
        .join(THREADS, t.id == r.thread_id)
        .join(WORKSPACES, w.id == t.workspace_id)
        .where(r.id == run_id, r.user_id == user_id, r.workflow.in_(SCHEDULED_WORKFLOWS))
        .where(_in_workspace(where))
    )
    async with runtime.autocommit.connect() as conn:
        return (await conn.execute(query)).scalar_one_or_none() is not None


async def cancel_schedule(runtime: Runtime, where: ThreadRef, user_id: str, schedule_id: int) -> bool:
    """Cancel the user's active schedule in the workspace of `where`; False if there is none such."""
    statement = (
        update(SCHEDULES)
        .where(
            s.id == schedule_id,
            s.user_id == user_id,
            s.status == "active",
            s.thread_id.in_(select(t.id).join(WORKSPACES, w.id == t.workspace_id).where(_in_workspace(where))),
        )
        .values(status="cancelled", cancelled_at=func.now())
        .returning(s.id)
    )
    async with runtime.autocommit.connect() as conn:
        return (await conn.execute(statement)).scalar_one_or_none() is not None
