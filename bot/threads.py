"""Threads beyond one message: the event every user message sends, a ThreadRef as JSON (for run inputs), and
finding or creating a thread's row for what starts outside a message (slash commands, schedules, follow-ups)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert

from bot.events import ThreadRef
from bot.models import THREADS, WORKSPACES
from bot.runtime import Runtime

# Sent for every user message in a thread; follow-ups and questions wait for it (see bot.followups).
THREAD_MESSAGE = "thread.message"


def thread_to_json(thread: ThreadRef) -> dict[str, str]:
    return {
        "platform": thread.platform,
        "workspace_id": thread.workspace_id,
        "channel_id": thread.channel_id,
        "thread_key": thread.thread_key,
    }


def thread_from_json(data: dict[str, str]) -> ThreadRef:
    return ThreadRef(data["platform"], data["workspace_id"], data["channel_id"], data["thread_key"])


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
