"""The console platform's outbound side: posts, edits and uploads go to a Redis stream per thread, which
`bot console` and `bot ask` read. Workers in any process can therefore answer a console user, exactly as for Slack.
An uploaded file's bytes wait in Redis next to its post; the reader saves them on its own disk (see `app.py`).

The outbox (Postgres) records every post; each stream entry carries its idempotency key, where `recovering` looks
for an earlier attempt's post, as Slack's metadata does."""

from __future__ import annotations

import uuid
from pathlib import PurePosixPath, PureWindowsPath

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from bot.errors import InvalidInput
from bot.events import PostedMessage, ThreadRef
from bot.ports import ChatPlatform, FileUpload, PostLedger

PLATFORM = "console"
_KEY_TTL_S = 7 * 24 * 3600
# Uploads wait in the Redis that also holds the job queue: a bound keeps one file from crowding it out.
MAX_UPLOAD_BYTES = 50 * 1024 * 1024


def stream_key(thread: ThreadRef) -> str:
    # Named by the thread's platform: the web playground's threads (`adapters.web`) have streams of their own.
    return f"{thread.platform}:stream:{thread.workspace_id}:{thread.channel_id}:{thread.thread_key}"


def file_key(message_id: str) -> str:
    return f"console:file:{message_id}"


def safe_filename(filename: str) -> str:
    """The last part of a name that may carry a path (from a user's upload, either separator): the reader writes
    it to its own disk, where `../` must not lead anywhere."""
    name = PureWindowsPath(PurePosixPath(filename).name).name.strip()
    return name if name not in ("", ".", "..") else "file"


class ConsoleOutbound(ChatPlatform):
    name = PLATFORM
    max_message_chars = 100_000
    min_edit_interval_s = 0.05

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def post_message(
        self, thread: ThreadRef, text: str, *, idempotency_key: str, recovering: bool = False
    ) -> PostedMessage:
        return await self._post(thread, idempotency_key, recovering, {"text": text})

    async def upload_file(
        self,
        thread: ThreadRef,
        upload: FileUpload,
        *,
        idempotency_key: str,
        recovering: bool = False,
        ledger: PostLedger | None = None,
    ) -> PostedMessage:
        """A post whose entry names the file; its bytes are stored under `file_key` in the same transaction."""
        size = len(upload.content)
        if size > MAX_UPLOAD_BYTES:
            raise InvalidInput(
                f"`{upload.filename}` is {size:,} bytes; the console keeps files up to {MAX_UPLOAD_BYTES:,} bytes."
            )
        fields = {"text": upload.comment, "file": safe_filename(upload.filename), "title": upload.title}
        return await self._post(thread, idempotency_key, recovering, {**fields, "size": str(size)}, upload.content)

    async def _post(
        self,
        thread: ThreadRef,
        key: str,
        recovering: bool,
        fields: dict[str, str],
        content: bytes | None = None,
    ) -> PostedMessage:
        if recovering:
            known = await self.find_by_key(thread, key)
            if known is not None:
                return PostedMessage(message_id=known, existed=True)
        message_id = uuid.uuid4().hex
        entry: dict[FieldT, EncodableT] = {"op": "post", "id": message_id, "key": key}
        entry.update(fields)
        # One transaction, so a reader never sees a file's post before its bytes.
        async with self._redis.pipeline(transaction=True) as pipe:
            if content is not None:
                pipe.set(file_key(message_id), content, ex=_KEY_TTL_S)
            pipe.xadd(stream_key(thread), entry, maxlen=10000)
            await pipe.execute()
        return PostedMessage(message_id=message_id)

    async def find_by_key(self, thread: ThreadRef, key: str) -> str | None:
        """The id of the post in the thread's stream that carries `key`; read only when recovering."""
        for _, fields in await self._redis.xrange(stream_key(thread)):
            if fields.get(b"op") == b"post" and fields.get(b"key") == key.encode():
                return as_text(fields[b"id"])
        return None

    async def edit_message(self, thread: ThreadRef, message_id: str, text: str) -> None:
        await self._redis.xadd(stream_key(thread), {"op": "edit", "id": message_id, "text": text}, maxlen=10000)

    # No status line (a terminal shows the streamed text itself as progress) and no native stream: the defaults.


def as_text(value: bytes | str) -> str:
    """Redis answers bytes; the stream's fields are UTF-8 text."""
    return value.decode() if isinstance(value, bytes) else value
