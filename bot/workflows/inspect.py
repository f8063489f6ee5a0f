"""Read-only views of runs for operators (`bot runs`) and for users' "what is scheduled" lists."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from bot.runtime import Runtime
from bot.workflows.models import RUNS, STEPS, WAITS

r, s, w = RUNS.c, STEPS.c, WAITS.c


@dataclass(frozen=True, slots=True)
class RunSummary:
    id: int
    workflow: str
    status: str
    description: str
    created_at: datetime
    updated_at: datetime
    wake_at: datetime | None
    attempts: int
    rescues: int
    error: str | None


@dataclass(frozen=True, slots=True)
class StepView:
    step_id: str
    kind: str
    status: str
    attempts: int
    started_at: datetime
    finished_at: datetime | None
    due_at: datetime | None
    error: str | None


@dataclass(frozen=True, slots=True)
class RunDetail:
    run: RunSummary
    input: Any
    output: Any
    lease_owner: str | None
    lease_until: datetime | None
    parent_run_id: int | None
    steps: list[StepView]
    waits: list[dict[str, Any]]


_SUMMARY = (
    r.id,
    r.workflow,
    r.status,
    r.description,
    r.created_at,
    r.updated_at,
    r.wake_at,
    r.attempts,
    r.rescues,
    r.error,
)


async def list_runs(
    runtime: Runtime,
    *,
    status: str | None = None,
    workflow: str | None = None,
    thread_id: int | None = None,
    user_id: str | None = None,
    limit: int = 20,
) -> list[RunSummary]:
    query = select(*_SUMMARY).order_by(r.id.desc()).limit(limit)
    if status:
        query = query.where(r.status == status)
    if workflow:
        query = query.where(r.workflow == workflow)
    if thread_id is not None:
        query = query.where(r.thread_id == thread_id)
    if user_id is not None:
        query = query.where(r.user_id == user_id)
    async with runtime.autocommit.connect() as conn:
        return [RunSummary(*tuple(row)) for row in await conn.execute(query)]


async def run_detail(runtime: Runtime, run_id: int) -> RunDetail | None:
    async with runtime.autocommit.connect() as conn:
        row = (
            await conn.execute(
                select(*_SUMMARY, r.input, r.output, r.lease_owner, r.lease_until, r.parent_run_id).where(
                    r.id == run_id
                )
            )
        ).first()
        if row is None:
            return None
        steps = [
            StepView(*step)
            for step in await conn.execute(
                select(s.step_id, s.kind, s.status, s.attempts, s.started_at, s.finished_at, s.due_at, s.error)
                .where(s.run_id == run_id)
                .order_by(s.started_at)
            )
        ]
        waits = [
            dict(wait)
            for wait in (
                await conn.execute(
                    select(w.step_id, w.event_name, w.match, w.state, w.expires_at).where(w.run_id == run_id)
                )
            ).mappings()
        ]
    summary = RunSummary(*tuple(row)[: len(_SUMMARY)])
    return RunDetail(summary, row.input, row.output, row.lease_owner, row.lease_until, row.parent_run_id, steps, waits)
