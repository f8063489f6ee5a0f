"""After a new gateway session (a restart, or a session Discord would not resume), read what was said while the
bot was away in the conversations it takes part in, and hand it to the same path as live messages.

Within one process discord.py resumes a dropped session itself and Discord replays what was missed. A new
process starts a new session, and nothing is replayed: here each recent conversation (its thread, DM, or the
channel it was opened from) is read after the newest message we stored from it. Intake deduplicates on the
message id, so a message seen before the restart is not answered twice, however the two paths overlap.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import discord
import structlog
from sqlalchemy import BigInteger, cast, func, select

from adapters.discord.inbound import PLATFORM
from bot.models import MESSAGES, THREADS
from bot.runtime import Runtime

log = structlog.get_logger(__name__)

# How far back a conversation counts as recent, how many of them are read, and how much of each.
RECENT = timedelta(hours=24)
MAX_CHANNELS = 100
MAX_MESSAGES_PER_CHANNEL = 100


@dataclass(frozen=True, slots=True)
class Unread:
    channel_id: int  # a Discord channel, thread or DM to read
    after: int  # the newest message id we stored from it


async def unread_since(runtime: Runtime) -> list[Unread]:
    """Recent conversations and, for each, where we stopped: the threads and DMs (their own channel) and the
    channels they were opened from (where a new mention would open the next thread)."""
    t, m = THREADS.c, MESSAGES.c
    newest = func.max(cast(m.platform_message_id, BigInteger))
    since = func.now() - RECENT
    recent = (
        select(t.thread_key.label("channel"), t.channel_id.label("parent"), newest.label("newest"))
        .join(MESSAGES, m.thread_id == t.id)
        .where(t.platform == PLATFORM, t.updated_at >= since, m.role == "user", m.platform_message_id.is_not(None))
        .group_by(t.thread_key, t.channel_id)
        .order_by(newest.desc())
        .limit(MAX_CHANNELS)
    )
    async with runtime.autocommit.connect() as conn:
        rows = (await conn.execute(recent)).all()
    after: dict[int, int] = {}
    for channel, parent, last in rows:
        for place in {int(channel), int(parent)}:
            after[place] = max(after.get(place, 0), int(last))
    return [Unread(channel, last) for channel, last in after.items()][:MAX_CHANNELS]


async def catch_up(client: discord.Client, runtime: Runtime, take: Callable[[discord.Message], Awaitable[None]]) -> int:
    """Hand every message written after we stopped, oldest first, to `take` (the live path); how many."""
    taken = 0
    for unread in await unread_since(runtime):
        channel = client.get_channel(unread.channel_id) or client.get_partial_messageable(unread.channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            continue
        try:
            async for message in channel.history(
                limit=MAX_MESSAGES_PER_CHANNEL, after=discord.Object(id=unread.after), oldest_first=True
            ):
                await take(message)
                taken += 1
        except (discord.Forbidden, discord.NotFound) as exc:
            log.info("discord catch-up skipped a channel", channel=unread.channel_id, error=str(exc))
        except discord.HTTPException as exc:
            log.warning("discord catch-up could not read a channel", channel=unread.channel_id, status=exc.status)
    return taken
