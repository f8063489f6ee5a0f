"""Side effects through the outbox: a `ChatPlatform` wrapper that records each post and file upload by its
idempotency key (`{run}:{step}:{part}`) in Postgres around the platform call. It is the one record of what was
posted: platforms keep none of their own (their native streams and continuation parts are recorded here too,
through the `PostLedger` it hands them), so a Redis flush between a crashed reply and its replay loses nothing.

- no row: write `intent`, post, write `sent` with the message id;
- `sent`: the post happened in an earlier attempt; return it (`existed=True`) so the caller edits instead;
- `intent` without `sent`: an attempt crashed around the post; ask the platform to look for it first
  (`recovering=True`: Slack searches its metadata, the console its stream, Discord's nonce dedupes by itself).
Uploads follow the same rows: a file is one more message in the thread.
Edits need no record: editing a message to the same text twice shows the same thing.

The `sent` write is off the reply's path when the run gives a `Pending` (steps do): the reply goes on being
streamed and edited while it is written, and the step waits for it before its result is kept. A crash before it
lands is the crash between post and `sent` that the `intent` row already covers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from sqlalchemy import bindparam, func, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert

from bot.errors import MessageTooLong
from bot.events import PostedMessage, ThreadRef
from bot.ports import ChatPlatform, FileUpload, PostLedger, ReplySink, Send
from bot.runtime import Runtime
from bot.trace import mark
from bot.workflows.models import OUTBOX

o = OUTBOX.c
# Built once; run with parameters (named b_* where a column of that name is set).
_CLAIM = (
    insert(OUTBOX)
    .values(key=bindparam("b_key"), run_id=bindparam("b_run_id"), platform=bindparam("b_platform"), state="intent")
    .on_conflict_do_update(index_elements=["key"], set_={"updated_at": func.now()})
    # xmax = 0 only for a row this statement inserted: tells a first attempt from a replay in one trip.
    .returning(o.state, o.message_id, o.note, literal_column("xmax = 0").label("inserted"))
)
_PARTS = select(o.key, o.message_id).where(o.key.like(bindparam("prefix"), escape="\\"), o.state == "sent")
_SENT = (
    update(OUTBOX)
    .where(o.key == bindparam("b_where_key"))
    .values(state="sent", message_id=bindparam("b_message_id"), updated_at=func.now())
)
_NOTE = update(OUTBOX).where(o.key == bindparam("b_where_key")).values(note=bindparam("b_note"))


class Pending:
    """Outbox writes of one step attempt still in flight; `settle` waits for them all."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    def add(self, write: Awaitable[None]) -> None:
        self._tasks.append(asyncio.ensure_future(write))

    async def settle(self, *, quiet: bool = False) -> None:
        """Wait for every write; raise the first that failed (`quiet`: only wait, the step is failing anyway)."""
        tasks, self._tasks = self._tasks, []
        results = await asyncio.gather(*tasks, return_exceptions=True)
        errors = [result for result in results if isinstance(result, BaseException)]
        if errors and not quiet:
            raise errors[0]


class OutboxPlatform(ChatPlatform):
    def __init__(
        self, platform: ChatPlatform, runtime: Runtime, run_id: int | None, pending: Pending | None = None
    ) -> None:
        self._platform = platform
        self._runtime = runtime
        self._run_id = run_id
        self._pending = pending
        self.name = platform.name
        self.max_message_chars = platform.max_message_chars
        self.min_edit_interval_s = platform.min_edit_interval_s
        # Whether this run posted under one of these keys before: only then can an earlier attempt have left parts.
        self._replayed = False
        # What the claims of this attempt found noted, so `noted` costs no second trip.
        self._notes: dict[str, str] = {}

    # -- the ledger ---------------------------------------------------------------------------------------------

    async def once(self, key: str, send: Send) -> PostedMessage:
        """intent -> `send(recovering)` -> sent, or the message a `sent` row already names."""
        return await self._once(key, False, send)

    async def _once(self, key: str, recovering: bool, send: Send) -> PostedMessage:
        params = {"b_key": key, "b_run_id": self._run_id, "b_platform": self.name}
        async with self._runtime.autocommit.connect() as conn:
            claimed = (await conn.execute(_CLAIM, params)).one()
        self._replayed = self._replayed or not claimed.inserted
        if claimed.state == "sent" and claimed.message_id:
            return PostedMessage(claimed.message_id, existed=True)
        if claimed.note:
            self._notes[key] = claimed.note
        mark("outbox:intent")
        return await self._sent(key, await send(recovering or not claimed.inserted))

    async def _sent(self, key: str, posted: PostedMessage) -> PostedMessage:
        mark("post")
        if self._pending is None:
            await self._write_sent(key, posted.message_id)
        else:
            self._pending.add(self._write_sent(key, posted.message_id))
        return posted

    async def _write_sent(self, key: str, message_id: str) -> None:
        async with self._runtime.autocommit.connect() as conn:
            await conn.execute(_SENT, {"b_where_key": key, "b_message_id": message_id})
        mark("outbox:sent")

    async def note(self, key: str, value: str) -> None:
        async with self._runtime.autocommit.connect() as conn:
            await conn.execute(_NOTE, {"b_where_key": key, "b_note": value})
        self._notes[key] = value

    async def noted(self, key: str) -> str | None:
        return self._notes.get(key)

    # -- the platform -------------------------------------------------------------------------------------------

    async def post_message(
        self, thread: ThreadRef, text: str, *, idempotency_key: str, recovering: bool = False
    ) -> PostedMessage:
        try:
            return await self._post(thread, text, idempotency_key, recovering)
        except MessageTooLong:
            # The platform's limit turned out lower than ours: the head under the key, the rest in parts after it.
            # The key is claimed and nothing was posted under it (the refusal says so): no lookup before the head.
            head, *rest = self.split_text(text, self.max_message_chars // 2)
            first = await self._sent(
                idempotency_key, await self._platform.post_message(thread, head, idempotency_key=idempotency_key)
            )
            await self._continue(thread, f"{idempotency_key}:more", rest)
            return first

    async def _post(self, thread: ThreadRef, text: str, key: str, recovering: bool) -> PostedMessage:
        return await self._once(
            key,
            recovering,
            lambda recover: self._platform.post_message(thread, text, idempotency_key=key, recovering=recover),
        )

    async def _continue(self, thread: ThreadRef, key_prefix: str, parts: list[str]) -> None:
        for index, part in enumerate(parts):
            posted = await self._post(thread, part, f"{key_prefix}:{index}", False)
            if posted.existed:  # an earlier attempt posted this part with its own text
                await self._platform.edit_message(thread, posted.message_id, part)

    async def edit_message(self, thread: ThreadRef, message_id: str, text: str) -> None:
        try:
            await self._platform.edit_message(thread, message_id, text)
            mark("edit")
        except MessageTooLong:
            head, *rest = self.split_text(text, self.max_message_chars // 2)
            await self._platform.edit_message(thread, message_id, head)
            # Keyed by the message, so a retried edit finds its follow-ups instead of posting them again.
            await self._continue(thread, f"edit:{message_id}:more", rest)

    async def upload_file(
        self,
        thread: ThreadRef,
        upload: FileUpload,
        *,
        idempotency_key: str,
        recovering: bool = False,
        ledger: PostLedger | None = None,
    ) -> PostedMessage:
        return await self._once(
            idempotency_key,
            recovering,
            lambda recover: self._platform.upload_file(
                thread, upload, idempotency_key=idempotency_key, recovering=recover, ledger=self
            ),
        )

    async def posted_beyond(self, key_prefix: str, count: int) -> list[str]:
        if not self._replayed:
            return []  # a first attempt: nothing was posted before it (and the hot path skips the query)
        return await self.posted_under(key_prefix, count)

    async def posted_under(self, key_prefix: str, start: int = 0) -> list[str]:
        """The messages posted under `{key_prefix}:{part}` (parts from `start` on), in part order: what a step of
        this run has put in the thread, in any attempt."""
        async with self._runtime.autocommit.connect() as conn:
            rows = (
                await conn.execute(
                    _PARTS, {"prefix": key_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + ":%"}
                )
            ).all()
        parts = []
        for row in rows:
            index = row.key.rsplit(":", 1)[1]
            if index.isdigit() and int(index) >= start and row.message_id:
                parts.append((int(index), row.message_id))
        return [message_id for _, message_id in sorted(parts)]

    async def show_working(self, thread: ThreadRef, status: str) -> None:
        await self._platform.show_working(thread, status)

    def open_reply(self, thread: ThreadRef, key_prefix: str, ledger: PostLedger | None = None) -> ReplySink | None:
        return self._platform.open_reply(thread, key_prefix, self)

    def split_text(self, text: str, limit: int) -> list[str]:
        return self._platform.split_text(text, limit)
