"""The console platform's outbound side: posts, edits and uploads go to a Redis stream per thread, which
`bot console` and `bot ask` read. Workers in any process can therefore answer a console user, exactly as for Slack.
An uploaded file's bytes wait in Redis next to its post; the reader saves them on its own disk (see `app.py`)."""

from __future__ import annotations

import uuid
from pathlib import PurePosixPath, PureWindowsPath

from redis.asyncio import Redis

from bot.errors import InvalidInput
from bot.events import PostedMessage, ThreadRef
from bot.ports import ReplySink

PLATFORM = "console"
_KEY_TTL_S = 7 * 24 * 3600
# Uploads wait in the Redis that also holds the job queue: a bound keeps one file from crowding it out.
MAX_UPLOAD_BYTES = 50 * 1024 * 1024

# Atomic "post once per idempotency key": a retried post returns the first message's id and posts nothing.
# KEYS: the key's record, the thread's stream, and for an upload the key its bytes are kept under.
# ARGV: the new message's id, the TTL, the file's bytes ('' for a post), then the stream entry's field/value pairs.
_POST_ONCE = """
local existing = redis.call('GET', KEYS[1])
if existing then return {existing, 1} end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
if KEYS[3] then redis.call('SET', KEYS[3], ARGV[3], 'EX', ARGV[2]) end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 10000, '*', 'op', 'post', 'id', ARGV[1], unpack(ARGV, 4))
return {ARGV[1], 0}
"""


def stream_key(thread: ThreadRef) -> str:
    return f"console:stream:{thread.workspace_id}:{thread.channel_id}:{thread.thread_key}"


def file_key(message_id: str) -> str:
    return f"console:file:{message_id}"


def safe_filename(filename: str) -> str:
    """The last part of a name that may carry a path (from a user's upload, either separator): the reader writes
    it to its own disk, where `../` must not lead anywhere."""
    name = PureWindowsPath(PurePosixPath(filename).name).name.strip()
    return name if name not in ("", ".", "..") else "file"


class ConsoleOutbound:
    name = PLATFORM
    max_message_chars = 100_000
    min_edit_interval_s = 0.05

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._post_once_script = redis.register_script(_POST_ONCE)

    async def post_message(
        self, thread: ThreadRef, text: str, *, idempotency_key: str, recovering: bool = False
    ) -> PostedMessage:
        # The Redis key makes every post idempotent, so `recovering` needs no lookup here.
        return await self._post_once(thread, idempotency_key, {"text": text})

    async def upload_file(
        self,
        thread: ThreadRef,
        *,
        filename: str,
        content: bytes,
        title: str,
        comment: str = "",
        idempotency_key: str,
        recovering: bool = False,
    ) -> PostedMessage:
        """A post whose entry names the file; its bytes are stored under `file_key` in the same atomic step."""
        if len(content) > MAX_UPLOAD_BYTES:
            raise InvalidInput(
                f"`{filename}` is {len(content):,} bytes; the console keeps files up to {MAX_UPLOAD_BYTES:,} bytes."
            )
        fields = {"text": comment, "file": safe_filename(filename), "title": title, "size": str(len(content))}
        return await self._post_once(thread, idempotency_key, fields, content)

    async def _post_once(
        self, thread: ThreadRef, idempotency_key: str, fields: dict[str, str], content: bytes | None = None
    ) -> PostedMessage:
        message_id = uuid.uuid4().hex
        keys = [f"console:posted:{idempotency_key}", stream_key(thread)]
        if content is not None:
            keys.append(file_key(message_id))
        pairs = [part for item in fields.items() for part in item]
        result = await self._post_once_script(keys=keys, args=[message_id, _KEY_TTL_S, content or b"", *pairs])
        posted_id, existed = result
        return PostedMessage(message_id=as_text(posted_id), existed=bool(int(existed)))

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
