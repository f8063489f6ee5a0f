"""Whether the bot takes part in a thread, asked by adapters at the edge (Postgres is the record, not the platform)."""

from __future__ import annotations

from bot.events import ThreadRef
from bot.runtime import Runtime
from bot.stores.threads import find_thread


async def takes_part(runtime: Runtime, thread: ThreadRef) -> bool:
    """True when the bot takes part in `thread`: someone talked to it there before, so it holds the thread."""
    return await find_thread(runtime, thread) is not None
