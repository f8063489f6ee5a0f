"""The console platform's outbound side: posts and edits go to a Redis stream per thread, which `bot console`
and `bot ask` read. Workers in any process can therefore answer a console user, exactly as for Slack."""

from __future__ import annotations

import uuid

from redis.asyncio import Redis

from bot.events import PostedMessage, ThreadRef
from bot.ports import ReplySink

PLATFORM = "console"
_KEY_TTL_S = 7 * 24 * 3600

# Atomic "post once per idempotency key": a retried post returns the first message's id and posts nothing.
_POST_ONCE = """
local existing = redis.call('GET', KEYS[1])
if existing then return {existing, 1} end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 10000, '*', 'op', 'post', 'id', ARGV[1], 'text', ARGV[2])
return {ARGV[1], 0}
"""


def stream_key(thread: ThreadRef) -> str:
    return f"console:stream:{thread.workspace_id}:{thread.channel_id}:{thread.thread_key}"


class ConsoleOutbound:
    name = PLATFORM
    max_message_chars = 100_000
    min_edit_interval_s = 0.05

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._post_once = redis.register_script(_POST_ONCE)

    async def post_message(
        self, thread: ThreadRef, text: str, *, idempotency_key: str, recovering: bool = False
    ) -> PostedMessage:
        # The Redis key makes every post idempotent, so `recovering` needs no lookup here.
        result = await self._post_once(
            keys=[f"console:posted:{idempotency_key}", stream_key(thread)],
            args=[uuid.uuid4().hex, text, _KEY_TTL_S],
        )
        message_id, existed = result
        return PostedMessage(message_id=as_text(message_id), existed=bool(int(existed)))

    async def edit_message(self, thread: ThreadRef, message_id: str, text: str) -> None:
        await self._redis.xadd(stream_key(thread), {"op": "edit", "id": message_id, "text": text}, maxlen=10000)

    async def show_working(self, thread: ThreadRef, status: str) -> None:
        # A terminal shows the streamed text itself as progress; there is no status line to set.
        return None

    def open_reply(self, thread: ThreadRef, key_prefix: str) -> ReplySink | None:
        return None


def as_text(value: bytes | str) -> str:
    """Redis answers bytes; the stream's fields are UTF-8 text."""
    return value.decode() if isinstance(value, bytes) else value
