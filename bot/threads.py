"""Finding or creating a thread's row (and its workspace's) for things that start outside a message: slash
commands, schedules, follow-ups."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert

from bot.events import ThreadRef
from bot.models import THREADS, WORKSPACES
from bot.runtime import Runtime


async def ensure_thread(runtime: Runtime, thread: ThreadRef) -> int:
    w, t = WORKSPACES.c, THREADS.c
    async with runtime.engine.begin() as conn:
        await conn.execute(
            insert(WORKSPACES)
            .values(platform=thread.platform, external_id=thread.workspace_id, name="")
            .on_conflict_do_nothing(constraint="uq_workspaces_platform_external")
        )
        workspace_id = (
            await conn.execute(select(w.id).where(w.platform == thread.platform, w.external_id == thread.workspace_id))
        ).scalar_one()
        return int(
            (
                await conn.execute(
                    insert(THREADS)
                    .values(
                        platform=thread.platform,
                        workspace_id=workspace_id,
                        channel_id=thread.channel_id,
                        thread_key=thread.thread_key,
                    )
                    .on_conflict_do_update(constraint="uq_threads_location", set_={"updated_at": func.now()})
                    .returning(t.id)
                )
            ).scalar_one()
        )
