"""Threads beyond one message: the event every user message sends, a ThreadRef as JSON (for run inputs), and
finding or creating a thread's row for what starts outside a message (slash commands, schedules, follow-ups)."""

from __future__ import annotations

from bot.events import ThreadRef
from bot.runtime import Runtime
from bot.stores.threads import upsert_thread

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
    """The thread's row id, for work that starts outside a message (intake creates the rows of messages' threads)."""
    return await upsert_thread(runtime, thread)
