"""Whether the bot takes part in a thread, asked by adapters at the edge (Postgres is the record, not the platform)."""

from __future__ import annotations

from sqlalchemy import select

from bot.events import ThreadRef
from bot.models import THREADS, WORKSPACES
from bot.runtime import Runtime


async def takes_part(runtime: Runtime, thread: ThreadRef) -> bool:
    """True when the bot takes part in `thread`: someone talked to it there before, so it holds the thread."""
    t, w = THREADS.c, WORKSPACES.c
    query = (
        select(t.id)
        .join(WORKSPACES, w.id == t.workspace_id)
        .where(
            t.platform == thread.platform,
            w.platform == thread.platform,
            w.external_id == thread.workspace_id,
            t.channel_id == thread.channel_id,
            t.thread_key == thread.thread_key,
        )
        .limit(1)
    )
    async with runtime.autocommit.connect() as conn:
        return (await conn.execute(query)).first() is not None
