"""Threads: finding or creating a thread's row (and its workspace's) by where it lives, and reading its history."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Row, and_, bindparam, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.events import ThreadRef
from bot.models import MESSAGES, THREADS, WORKSPACES
from bot.runtime import Runtime

m, t, w = MESSAGES.c, THREADS.c, WORKSPACES.c

# Built once; run with parameters (named b_* where a column of that name is set: SQLAlchemy reserves those).
_ADD_WORKSPACE = (
    insert(WORKSPACES)
    .values(platform=bindparam("b_platform"), external_id=bindparam("b_workspace_id"), name="")
    .on_conflict_do_nothing(constraint="uq_workspaces_platform_external")
)
_WORKSPACE = select(w.id).where(w.platform == bindparam("platform"), w.external_id == bindparam("workspace_id"))
_ADD_THREAD = (
    insert(THREADS)
    .values(
        platform=bindparam("b_platform"),
        workspace_id=bindparam("b_workspace"),
        channel_id=bindparam("b_channel_id"),
        thread_key=bindparam("b_thread_key"),
    )
    .on_conflict_do_update(constraint="uq_threads_location", set_={"updated_at": func.now()})
    .returning(t.id)
)
_FIND = (
    select(t.id)
    .join(WORKSPACES, w.id == t.workspace_id)
    .where(
        t.platform == bindparam("platform"),
        w.platform == bindparam("platform"),
        w.external_id == bindparam("workspace_id"),
        t.channel_id == bindparam("channel_id"),
        t.thread_key == bindparam("thread_key"),
    )
    .limit(1)
)
# What the model may see of a thread: answered replies and the user's messages that did not fail.
# A reply is part of the history of every message after the one it answers, even when it was stored after them
# (a message sent while the reply was being written): it sits right after its question in the prompt.
_HISTORY = (
    select(m.role, m.text, m.token_count, m.id, m.reply_to_id)
    .where(
        m.thread_id == bindparam("thread_id"),
        or_(
            and_(
                m.role == "assistant",
                m.status == "completed",
                or_(m.id < bindparam("before"), m.reply_to_id < bindparam("before")),
            ),
            and_(m.role == "user", m.status != "failed", m.id < bindparam("before")),
        ),
    )
    .order_by(m.id.desc())
    .limit(bindparam("limit"))
)


def _location(thread: ThreadRef) -> dict[str, str]:
    return {
        "platform": thread.platform,
        "workspace_id": thread.workspace_id,
        "channel_id": thread.channel_id,
        "thread_key": thread.thread_key,
    }


async def upsert_thread(runtime: Runtime, thread: ThreadRef) -> int:
    """The id of the thread's row, created with its workspace's row if this is the first we hear of it."""
    async with runtime.engine.begin() as conn:
        await conn.execute(_ADD_WORKSPACE, {"b_platform": thread.platform, "b_workspace_id": thread.workspace_id})
        workspace = (
            await conn.execute(_WORKSPACE, {"platform": thread.platform, "workspace_id": thread.workspace_id})
        ).scalar_one()
        params = {
            "b_platform": thread.platform,
            "b_workspace": workspace,
            "b_channel_id": thread.channel_id,
            "b_thread_key": thread.thread_key,
        }
        return int((await conn.execute(_ADD_THREAD, params)).scalar_one())


async def find_thread(runtime: Runtime, thread: ThreadRef) -> int | None:
    """The id of the thread's row, None if there is none."""
    async with runtime.autocommit.connect() as conn:
        found = (await conn.execute(_FIND, _location(thread))).scalar_one_or_none()
    return None if found is None else int(found)


async def history(
    conn: AsyncConnection, thread_id: int, *, before: int, limit: int
) -> Sequence[Row[str, str, int, int, int | None]]:
    """Up to `limit` of the thread's messages before message `before` (and the replies to them), newest first, as
    rows of `role`, `text`, `token_count`, `id` and `reply_to_id`; read through the (thread_id, id) index, so the
    cost stays flat as the thread grows."""
    rows = (await conn.execute(_HISTORY, {"thread_id": thread_id, "before": before, "limit": limit})).all()
    # Newest first by place in the conversation: a reply right after the message it answers.
    return sorted(rows, key=lambda row: (row.reply_to_id or row.id, row.id), reverse=True)
