"""What the console's pages read: plain SQL over the bot's own tables (no second source of truth). Each function
is one page's or one fragment's data; every list is bounded."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from bot.costs.models import TOKEN_USAGE
from bot.followups.models import SCHEDULES
from bot.media.models import MEDIA, MEDIA_TAGS, UTTERANCES
from bot.models import MESSAGES, THREADS, WORKSPACES
from bot.runtime import Runtime
from bot.stores.followups import SCHEDULED_WORKFLOWS
from bot.workflows.models import ACTIVE_STATUSES, EVENTS, OUTBOX, RUNS, WAITS

r, t, m, w = RUNS.c, THREADS.c, MESSAGES.c, WORKSPACES.c
PAGE = 100
SINCE = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7)}


@dataclass(frozen=True, slots=True)
class RunFilter:
    status: str = ""
    workflow: str = ""
    platform: str = ""
    thread: str = ""  # a thread's id or its platform key
    since: str = ""  # a key of SINCE

    @classmethod
    def from_query(cls, query: Any) -> RunFilter:
        return cls(**{name: str(query.get(name, "")).strip() for name in cls.__dataclass_fields__})

    def as_query(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__ if getattr(self, name)}


async def list_runs(runtime: Runtime, wanted: RunFilter, *, limit: int = PAGE) -> list[dict[str, Any]]:
    query = (
        select(
            r.id, r.workflow, r.status, r.description, r.created_at, r.updated_at, r.wake_at, r.attempts, r.error,
            r.parent_run_id, r.thread_id, t.platform, t.thread_key,
        )
        .outerjoin(THREADS, t.id == r.thread_id)
        .order_by(r.id.desc())
        .limit(limit)
    )  # fmt: skip
    if wanted.status:
        query = query.where(r.status == wanted.status)
    if wanted.workflow:
        query = query.where(r.workflow == wanted.workflow)
    if wanted.platform:
        query = query.where(t.platform == wanted.platform)
    if wanted.thread:
        key = t.thread_key == wanted.thread
        query = query.where(key | (r.thread_id == int(wanted.thread)) if wanted.thread.isdigit() else key)
    if wanted.since in SINCE:
        query = query.where(r.created_at >= func.now() - SINCE[wanted.since])
    async with runtime.autocommit.connect() as conn:
        return [dict(row) for row in (await conn.execute(query)).mappings()]


async def workflow_names(runtime: Runtime) -> list[str]:
    async with runtime.autocommit.connect() as conn:
        return [
            str(name) for name in (await conn.execute(select(r.workflow).distinct().order_by(r.workflow))).scalars()
        ]


@dataclass(frozen=True, slots=True)
class RunExtras:
    thread: dict[str, Any] | None
    children: list[dict[str, Any]]
    posts: list[dict[str, Any]]
    events: list[dict[str, Any]]
    tokens: dict[str, Any]


async def run_extras(runtime: Runtime, run_id: int) -> RunExtras:
    """Around a run: its thread, the runs it started, the posts it made (the outbox), the events its waits
    matched, and the tokens it spent."""
    o, e, wt, u = OUTBOX.c, EVENTS.c, WAITS.c, TOKEN_USAGE.c
    async with runtime.autocommit.connect() as conn:
        thread = None
        thread_id = (await conn.execute(select(r.thread_id).where(r.id == run_id))).scalar_one_or_none()
        if thread_id is not None:
            row = (
                await conn.execute(select(t.id, t.platform, t.thread_key, t.channel_id).where(t.id == thread_id))
            ).first()
            thread = dict(row._mapping) if row is not None else None
        children = await conn.execute(
            select(r.id, r.workflow, r.status, r.created_at).where(r.parent_run_id == run_id).order_by(r.id)
        )
        posts = await conn.execute(
            select(o.key, o.platform, o.state, o.message_id, o.created_at)
            .where(o.run_id == run_id)
            .order_by(o.created_at)
        )
        events = await conn.execute(
            select(e.id, e.event_name, e.data, e.created_at)
            .join(WAITS, wt.event_id == e.id)
            .where(wt.run_id == run_id)
            .order_by(e.id)
        )
        tokens = (
            await conn.execute(
                select(
                    func.count().label("calls"),
                    func.coalesce(func.sum(u.prompt_tokens), 0).label("prompt"),
                    func.coalesce(func.sum(u.completion_tokens), 0).label("completion"),
                    func.coalesce(func.sum(u.cost_usd), 0.0).label("cost"),
                ).where(u.run_id == run_id)
            )
        ).one()
        return RunExtras(
            thread,
            [dict(x) for x in children.mappings()],
            [dict(x) for x in posts.mappings()],
            [dict(x) for x in events.mappings()],
            dict(tokens._mapping),
        )


async def list_events(runtime: Runtime, *, name: str = "", limit: int = PAGE) -> list[dict[str, Any]]:
    e = EVENTS.c
    query = select(e.id, e.event_name, e.data, e.dedupe_key, e.created_at).order_by(e.id.desc()).limit(limit)
    if name:
        query = query.where(e.event_name == name)
    async with runtime.autocommit.connect() as conn:
        return [dict(row) for row in (await conn.execute(query)).mappings()]


async def list_schedules(runtime: Runtime, *, limit: int = PAGE) -> dict[str, list[dict[str, Any]]]:
    """Recurring schedules, and the one-off reminders and follow-ups still waiting (sleeping runs)."""
    s = SCHEDULES.c
    async with runtime.autocommit.connect() as conn:
        recurring = await conn.execute(
            select(s.id, s.user_id, s.spec, s.text, s.status, s.timezone, s.created_at, s.cancelled_at,
                   t.platform, t.thread_key, s.thread_id)
            .join(THREADS, t.id == s.thread_id)
            .order_by(s.status, s.id.desc())
            .limit(limit)
        )  # fmt: skip
        one_off = await conn.execute(
            select(r.id, r.workflow, r.status, r.description, r.user_id, r.wake_at, t.platform, t.thread_key)
            .outerjoin(THREADS, t.id == r.thread_id)
            # `running` too: a reminder is running for a moment before it sleeps, and again when it fires.
            .where(r.workflow.in_(SCHEDULED_WORKFLOWS), r.status.in_(ACTIVE_STATUSES))
            .order_by(r.wake_at)
            .limit(limit)
        )
        return {"recurring": [dict(x) for x in recurring.mappings()], "one_off": [dict(x) for x in one_off.mappings()]}


async def cancel_schedule(runtime: Runtime, schedule_id: int) -> bool:
    """An operator's cancel: any user's schedule. The scheduler leader drops it at its next sync."""
    s = SCHEDULES.c
    statement = (
        SCHEDULES.update()
        .where(s.id == schedule_id, s.status == "active")
        .values(status="cancelled", cancelled_at=func.now())
        .returning(s.id)
    )
    async with runtime.autocommit.connect() as conn:
        return (await conn.execute(statement)).scalar_one_or_none() is not None


async def list_threads(runtime: Runtime, *, platform: str = "", limit: int = PAGE) -> list[dict[str, Any]]:
    last = func.max(m.created_at).label("last_at")
    query = (
        select(t.id, t.platform, t.channel_id, t.thread_key, w.external_id.label("workspace"),
               func.count(m.id).label("messages"), last)
        .join(WORKSPACES, w.id == t.workspace_id)
        .outerjoin(MESSAGES, m.thread_id == t.id)
        .group_by(t.id, w.external_id)
        .order_by(last.desc().nulls_last())
        .limit(limit)
    )  # fmt: skip
    if platform:
        query = query.where(t.platform == platform)
    async with runtime.autocommit.connect() as conn:
        return [dict(row) for row in (await conn.execute(query)).mappings()]


async def thread_messages(
    runtime: Runtime, thread_id: int, *, limit: int = 500
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    async with runtime.autocommit.connect() as conn:
        row = (
            await conn.execute(
                select(t.id, t.platform, t.channel_id, t.thread_key, w.external_id.label("workspace"))
                .join(WORKSPACES, w.id == t.workspace_id)
                .where(t.id == thread_id)
            )
        ).first()
        if row is None:
            return None, []
        messages = await conn.execute(
            select(m.id, m.role, m.author_id, m.text, m.status, m.run_id, m.error, m.reply_to_id, m.created_at)
            .where(m.thread_id == thread_id)
            .order_by(m.id)
            .limit(limit)
        )
        return dict(row._mapping), [dict(x) for x in messages.mappings()]


async def list_media(runtime: Runtime, *, tag: str = "", limit: int = PAGE) -> list[dict[str, Any]]:
    md, tg = MEDIA.c, MEDIA_TAGS.c
    tags = select(func.string_agg(tg.tag, ", ")).where(tg.media_id == md.id).scalar_subquery().label("tags")
    query = (
        select(md.id, md.name, md.kind, md.size, md.status, md.error, md.chain, md.duration_s, md.run_id,
               md.platform, md.created_at, tags)
        .order_by(md.id.desc())
        .limit(limit)
    )  # fmt: skip
    if tag:
        query = query.where(md.id.in_(select(tg.media_id).where(tg.tag == tag)))
    async with runtime.autocommit.connect() as conn:
        return [dict(row) for row in (await conn.execute(query)).mappings()]


async def media_detail(runtime: Runtime, media_id: int) -> dict[str, Any] | None:
    md, tg, ut = MEDIA.c, MEDIA_TAGS.c, UTTERANCES.c
    async with runtime.autocommit.connect() as conn:
        row = (await conn.execute(select(MEDIA).where(md.id == media_id))).first()
        if row is None:
            return None
        found = dict(row._mapping)
        found["tags"] = list(
            (await conn.execute(select(tg.tag).where(tg.media_id == media_id).order_by(tg.tag))).scalars()
        )
        found["utterances"] = [
            dict(x)
            for x in (
                await conn.execute(
                    select(ut.seq, ut.speaker, ut.start_s, ut.end_s, ut.text)
                    .where(ut.media_id == media_id)
                    .order_by(ut.seq)
                )
            ).mappings()
        ]
        return found


async def web_threads(runtime: Runtime, *, limit: int = 50) -> list[dict[str, Any]]:
    """The playground's threads, most recent first."""
    return await list_threads(runtime, platform="web", limit=limit)


def duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    seconds = (end - start).total_seconds()
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def timeline(detail: Any, step: Any, width: float = 200.0) -> tuple[float, float]:
    """Where a step's bar sits in the run's waterfall: x and width, in `width` units, from the run's creation to its
    last finished step (or now, by the database's last update)."""
    start = detail.run.created_at
    ends = [s.finished_at for s in detail.steps if s.finished_at is not None]
    end = max([*ends, detail.run.updated_at])
    span = max((end - start).total_seconds(), 0.001)
    left = max((step.started_at - start).total_seconds(), 0.0) / span * width
    finished = step.finished_at or end
    size = max((finished - step.started_at).total_seconds() / span * width, 2.0)
    return round(min(left, width - 2), 1), round(min(size, width - min(left, width - 2)), 1)
