"""Side effects through the outbox: a `ChatPlatform` wrapper that records each post and file upload by its
idempotency key (`{run}:{step}:{part}`) in Postgres around the platform call.

- no row: write `intent`, post, write `sent` with the message id;
- `sent`: the post happened in an earlier attempt; return it (`existed=True`) so the caller edits instead;
- `intent` without `sent`: an attempt crashed around the post; ask the platform to look for it first
  (`recovering=True`: Slack searches its metadata, Discord's nonce and the console's key dedupe by themselves).
Uploads follow the same rows: a file is one more message in the thread.
Edits need no record: editing a message to the same text twice shows the same thing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import bindparam, func, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert

from bot.events import PostedMessage, ThreadRef
from bot.ports import ChatPlatform, ReplySink
from bot.runtime import Runtime
from bot.workflows.models import OUTBOX

o = OUTBOX.c
# Built once; run with parameters (named b_* where a column of that name is set).
_CLAIM = (
    insert(OUTBOX)
    .values(key=bindparam("b_key"), run_id=bindparam("b_run_id"), platform=bindparam("b_platform"), state="intent")
    .on_conflict_do_update(index_elements=["key"], set_={"updated_at": func.now()})
    # xmax = 0 only for a row this statement inserted: tells a first attempt from a replay in one trip.
    .returning(o.state, o.message_id, literal_column("xmax = 0"))
)
_PARTS = select(o.key, o.message_id).where(o.key.like(bindparam("prefix"), escape="\\"), o.state == "sent")
_SENT = (
    update(OUTBOX)
    .where(o.key == bindparam("b_where_key"))
    .values(state="sent", message_id=bindparam("b_message_id"), updated_at=func.now())
)


class OutboxPlatform:
    def __init__(self, platform: ChatPlatform, runtime: Runtime, run_id: int | None) -> None:
        self._platform = platform
        self._runtime = runtime
        self._run_id = run_id
        self.name = platform.name
        self.max_message_chars = platform.max_message_chars
        self.min_edit_interval_s = platform.min_edit_interval_s
        # A platform's own way of cutting long text (see bot.streaming.open_reply), passed through.
        self.split_text = getattr(platform, "split_text", None)
        # Whether this run posted under one of these keys before: only then can an earlier attempt have left parts.
        self._replayed = False

    async def post_message(
        self, thread: ThreadRef, text: str, *, idempotency_key: str, recovering: bool = False
    ) -> PostedMessage:
        return await self._once(
            idempotency_key,
            recovering,
            lambda recover: self._platform.post_message(
                thread, text, idempotency_key=idempotency_key, recovering=recover
            ),
        )

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
        return await self._once(
            idempotency_key,
            recovering,
            lambda recover: self._platform.upload_file(
                thread,
                filename=filename,
                content=content,
                title=title,
                comment=comment,
                idempotency_key=idempotency_key,
                recovering=recover,
            ),
        )

    async def _once(
        self, key: str, recovering: bool, send: Callable[[bool], Awaitable[PostedMessage]]
    ) -> PostedMessage:
        """intent -> `send(recovering)` -> sent, or the message a `sent` row already names."""
        params = {"b_key": key, "b_run_id": self._run_id, "b_platform": self.name}
        async with self._runtime.autocommit.connect() as conn:
            state, message_id, inserted = (await conn.execute(_CLAIM, params)).one()
        self._replayed = self._replayed or not inserted
        if state == "sent" and message_id:
            return PostedMessage(message_id, existed=True)
        posted = await send(recovering or not inserted)
        async with self._runtime.autocommit.connect() as conn:
            await conn.execute(_SENT, {"b_where_key": key, "b_message_id": posted.message_id})
        return posted

    async def posted_beyond(self, key_prefix: str, count: int) -> list[str]:
        """Messages posted under `{key_prefix}:{n}` for n >= count: parts an earlier attempt had and this one has
        not."""
        if not self._replayed:
            return []  # a first attempt: nothing was posted before it (and the hot path skips the query)
        async with self._runtime.autocommit.connect() as conn:
            rows = (
                await conn.execute(
                    _PARTS, {"prefix": key_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + ":%"}
                )
            ).all()
        parts = []
        for key, message_id in rows:
            index = key.rsplit(":", 1)[1]
            if index.isdigit() and int(index) >= count and message_id:
                parts.append((int(index), message_id))
        return [message_id for _, message_id in sorted(parts)]

    async def edit_message(self, thread: ThreadRef, message_id: str, text: str) -> None:
        await self._platform.edit_message(thread, message_id, text)

    async def show_working(self, thread: ThreadRef, status: str) -> None:
        await self._platform.show_working(thread, status)

    def open_reply(self, thread: ThreadRef, key_prefix: str) -> ReplySink | None:
        # A native stream is idempotent per key prefix on its own (see the port); it bypasses the record.
        return self._platform.open_reply(thread, key_prefix)


def with_outbox(platform: ChatPlatform, runtime: Runtime, run_id: int | None) -> ChatPlatform:
    return OutboxPlatform(platform, runtime, run_id)
