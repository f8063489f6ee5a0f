"""Messages: claiming a user's message for its turn, storing the bot's reply, statuses, a user's edits and
deletions, and where a message lives."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, Update, bindparam, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.context import Preferences, Turn
from bot.events import ThreadRef
from bot.media.retrieval import channel_key_sql, has_chunks
from bot.models import MESSAGES, THREADS, USER_PREFERENCES, WORKSPACES
from bot.runtime import Runtime
from bot.stores.preferences import PREFERENCE_COLUMNS
from bot.tokens import count_tokens

m, t, w = MESSAGES.c, THREADS.c, WORKSPACES.c


@dataclass(frozen=True, slots=True)
class Claimed:
    turn: Turn
    thread: ThreadRef
    prefs: Preferences | None
    # Transcript chunks exist in this thread or its channel: the turn looks for excerpts to add.
    media_nearby: bool
    # The message shared files (in a chat turn: pictures, for the model to look at).
    has_files: bool = False


def _claim_statement() -> Select[Any]:
    p = USER_PREFERENCES.c
    claimed = (
        update(MESSAGES)
        .where(m.id == bindparam("message_id"), m.status.in_(("pending", "processing", "failed")))
        .values(status="processing", attempts=m.attempts + 1, updated_at=func.now())
        .returning(
            m.id, m.thread_id, m.author_id, m.text, m.token_count, m.attempts, m.files.is_not(None).label("has_files")
        )
        .cte("claimed")
    )
    c = claimed.c
    return (
        select(
            c.id,
            c.thread_id,
            c.author_id,
            c.text,
            c.token_count,
            c.attempts,
            c.has_files,
            t.platform,
            w.external_id.label("workspace_id"),
            t.channel_id,
            t.thread_key,
            has_chunks(c.thread_id, channel_key_sql(t.platform, w.external_id, t.channel_id)).label("media_nearby"),
            p.id.is_not(None).label("has_prefs"),
            *PREFERENCE_COLUMNS,
        )
        .select_from(claimed)
        .join(THREADS, t.id == c.thread_id)
        .join(WORKSPACES, w.id == t.workspace_id)
        .outerjoin(
            USER_PREFERENCES,
            (p.platform == t.platform) & (p.workspace_id == w.external_id) & (p.user_id == c.author_id),
        )
    )


def _store_reply_statement() -> Update:
    values = {
        "thread_id": bindparam("b_thread_id"),
        "role": "assistant",
        "author_id": "bot",
        "text": bindparam("b_text"),
        "token_count": bindparam("b_tokens"),
        "status": "completed",
        "platform_message_id": bindparam("b_platform_message_id"),
        "reply_to_id": bindparam("b_message_id"),
        "attempts": 0,
    }
    reply = (
        insert(MESSAGES)
        .values(values)
        .on_conflict_do_update(
            index_elements=["reply_to_id"],
            set_={"text": values["text"], "token_count": values["token_count"], "updated_at": func.now()},
        )
        .returning(m.id)
        .cte("reply")
    )
    return (
        update(MESSAGES)
        .where(m.id == bindparam("b_message_id"), select(reply.c.id).exists())
        .values(status="completed", error=None, updated_at=func.now())
    )


# Built once (bind parameters named b_* where a column of that name is set).
_CLAIM = _claim_statement()
_STORE_REPLY = _store_reply_statement()
_TURN = select(m.id, m.thread_id, m.author_id, m.text, m.token_count, m.attempts).where(m.id == bindparam("message_id"))
_THREAD_OF = (
    select(t.platform, w.external_id.label("workspace_id"), t.channel_id, t.thread_key)
    .join(THREADS, t.id == m.thread_id)
    .join(WORKSPACES, w.id == t.workspace_id)
    .where(m.id == bindparam("message_id"))
)


# The messages of a channel a platform event names, for edits and deletions (which do not say which thread).
_IN_CHANNEL = (
    select(t.id)
    .join(WORKSPACES, w.id == t.workspace_id)
    .where(
        t.platform == bindparam("b_platform"),
        w.platform == bindparam("b_platform"),
        w.external_id == bindparam("b_workspace_id"),
        # A Discord thread is a channel of its own: an edit there names the thread, our thread's key.
        or_(t.channel_id == bindparam("b_channel_id"), t.thread_key == bindparam("b_channel_id")),
    )
    .scalar_subquery()
)
_EDIT = (
    update(MESSAGES)
    .where(
        m.platform_message_id == bindparam("b_platform_message_id"),
        m.role == "user",
        m.thread_id.in_(_IN_CHANNEL),
    )
    .values(text=bindparam("b_text"), token_count=bindparam("b_tokens"), updated_at=func.now())
)
# A turn being answered right now keeps its row: its reply refers to it.
_DROP = delete(MESSAGES).where(
    m.platform_message_id == bindparam("b_platform_message_id"),
    m.role == "user",
    m.status != "processing",
    m.thread_id.in_(_IN_CHANNEL),
)


async def claim_message(runtime: Runtime, message_id: int) -> Claimed | None:
    """Mark the message `processing` and load it with its thread, the author's preferences and whether media were
    shared nearby, in one statement. None if it no longer exists or was answered already."""
    async with runtime.autocommit.connect() as conn:
        row = (await conn.execute(_CLAIM, {"message_id": message_id})).first()
    if row is None:
        return None
    turn = Turn(row.id, row.thread_id, row.author_id, row.text, row.token_count, row.attempts)
    thread = ThreadRef(row.platform, row.workspace_id, row.channel_id, row.thread_key)
    prefs = Preferences(row.display_name, row.timezone, row.language, row.instructions) if row.has_prefs else None
    return Claimed(turn, thread, prefs, media_nearby=bool(row.media_nearby), has_files=bool(row.has_files))


async def load_turn(conn: AsyncConnection, message_id: int) -> Turn | None:
    """The message as a turn to answer, without claiming it."""
    row = (await conn.execute(_TURN, {"message_id": message_id})).first()
    return None if row is None else Turn(row.id, row.thread_id, row.author_id, row.text, row.token_count, row.attempts)


async def store_reply(
    runtime: Runtime,
    *,
    thread_id: int,
    message_id: int,
    text: str,
    platform_message_id: str,
    along: tuple[int, ...] = (),
) -> None:
    """Store the reply and complete the message in one statement. reply_to_id is unique, so a replayed step
    overwrites its stored reply instead of adding a second one. `along`: earlier messages the reply answered
    too (a burst), completed with it."""
    params = {
        "b_thread_id": thread_id,
        "b_message_id": message_id,
        "b_text": text,
        "b_tokens": count_tokens(text, runtime.settings.openai_model),
        "b_platform_message_id": platform_message_id,
    }
    if not along:
        async with runtime.autocommit.connect() as conn:
            await conn.execute(_STORE_REPLY, params)
        return
    async with runtime.engine.begin() as conn:
        await conn.execute(_STORE_REPLY, params)
        await conn.execute(
            update(MESSAGES).where(m.id.in_(along)).values(status="completed", error=None, updated_at=func.now())
        )


async def set_status(
    runtime: Runtime, message_id: int, status: str, error: str | None = None, along: tuple[int, ...] = ()
) -> None:
    """Move an unfinished message (and those answered `along` with it) to `status` (a completed one stays
    completed)."""
    async with runtime.autocommit.connect() as conn:
        await conn.execute(
            update(MESSAGES)
            .where(m.id.in_((message_id, *along)), m.status != "completed")
            .values(status=status, error=error, updated_at=func.now())
        )


async def thread_of(runtime: Runtime, message_id: int) -> ThreadRef | None:
    async with runtime.autocommit.connect() as conn:
        row = (await conn.execute(_THREAD_OF, {"message_id": message_id})).first()
    return None if row is None else ThreadRef(row.platform, row.workspace_id, row.channel_id, row.thread_key)


async def last_message_id(runtime: Runtime, thread_id: int) -> int:
    """The newest message's id in the thread (0 for none): a snapshot point later reads stop at."""
    async with runtime.autocommit.connect() as conn:
        found = await conn.execute(select(func.max(m.id)).where(m.thread_id == thread_id))
        return int(found.scalar_one() or 0)


async def thread_authors(runtime: Runtime, thread_id: int, *, up_to: int | None = None) -> list[str]:
    """The users who wrote in the thread (up to message `up_to`), in the order they first did."""
    query = select(m.author_id, func.min(m.id).label("first")).where(
        m.thread_id == thread_id, m.role == "user", m.author_id != ""
    )
    if up_to is not None:
        query = query.where(m.id <= up_to)
    async with runtime.autocommit.connect() as conn:
        rows = (await conn.execute(query.group_by(m.author_id).order_by("first"))).all()
    return [row.author_id for row in rows]


async def message_files(runtime: Runtime, message_id: int) -> list[dict[str, Any]]:
    """The files a message shared, as intake stored them (`FileRef` fields)."""
    async with runtime.autocommit.connect() as conn:
        files = (await conn.execute(select(m.files).where(m.id == message_id))).scalar_one()
    return list(files or [])


async def messages_files(runtime: Runtime, message_ids: Sequence[int]) -> list[dict[str, Any]]:
    """The files the messages shared, in message order."""
    async with runtime.autocommit.connect() as conn:
        rows = await conn.execute(select(m.files).where(m.id.in_(message_ids)).order_by(m.id))
        return [file for (files,) in rows for file in files or []]


async def store_digest(
    runtime: Runtime, *, thread_id: int, text: str, key: str, platform_message_id: str, reply_to_id: int | None
) -> None:
    """A digest joins the thread's history, so follow-up questions see it; `key` keeps a replay from storing it
    twice, and `reply_to_id` (the first file's) makes it the message's answer."""
    statement = (
        insert(MESSAGES)
        .values(
            thread_id=thread_id,
            role="assistant",
            author_id="bot",
            text=text,
            token_count=count_tokens(text, runtime.settings.openai_model),
            status="completed",
            dedupe_key=key,
            platform_message_id=platform_message_id,
            reply_to_id=reply_to_id,
            attempts=0,
        )
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
    )
    async with runtime.autocommit.connect() as conn:
        await conn.execute(statement)


async def end_message(runtime: Runtime, message_id: int, status: str, error: str | None) -> None:
    """A media turn's verdict on its message, whatever it said before."""
    async with runtime.autocommit.connect() as conn:
        await conn.execute(
            update(MESSAGES)
            .where(m.id == message_id)
            .values(status=status, error=error[:2000] if error else None, updated_at=func.now())
        )


async def edit_user_message(
    runtime: Runtime, *, platform: str, workspace_id: str, channel_id: str, platform_message_id: str, text: str
) -> int:
    """Replace the stored text of a user's message; how many rows changed (0: not one of ours)."""
    params: dict[str, Any] = {
        **_where_params(platform, workspace_id, channel_id, platform_message_id),
        "b_text": text,
        "b_tokens": count_tokens(text, runtime.settings.openai_model),
    }
    async with runtime.autocommit.connect() as conn:
        return int((await conn.execute(_EDIT, params)).rowcount)


async def drop_user_message(
    runtime: Runtime, *, platform: str, workspace_id: str, channel_id: str, platform_message_id: str
) -> int:
    """Delete a user's message unless it is being answered; how many rows went."""
    params = _where_params(platform, workspace_id, channel_id, platform_message_id)
    async with runtime.autocommit.connect() as conn:
        return int((await conn.execute(_DROP, params)).rowcount)


def _where_params(platform: str, workspace_id: str, channel_id: str, platform_message_id: str) -> dict[str, str]:
    """The parameters of a statement on a message by where the platform says it is (`_IN_CHANNEL`)."""
    return {
        "b_platform": platform,
        "b_workspace_id": workspace_id,
        "b_channel_id": channel_id,
        "b_platform_message_id": platform_message_id,
    }


@dataclass(frozen=True, slots=True)
class MessageView:
    """A user's message as an operator looks it up: where it is, what became of it, and the run answering it."""

    message_id: int
    platform: str
    channel_id: str
    thread_key: str
    author_id: str
    status: str
    error: str | None
    run_id: int | None
    reply: str | None


async def describe_message(runtime: Runtime, message_id: int) -> MessageView | None:
    reply = MESSAGES.alias("reply")
    query = (
        select(
            MESSAGES.c.id,
            THREADS.c.platform,
            THREADS.c.channel_id,
            THREADS.c.thread_key,
            MESSAGES.c.author_id,
            MESSAGES.c.status,
            MESSAGES.c.error,
            MESSAGES.c.run_id,
            reply.c.text,
        )
        .join(THREADS, THREADS.c.id == MESSAGES.c.thread_id)
        .outerjoin(reply, reply.c.reply_to_id == MESSAGES.c.id)
        .where(MESSAGES.c.id == message_id)
    )
    async with runtime.autocommit.connect() as conn:
        row = (await conn.execute(query)).first()
    return MessageView(*row) if row is not None else None


_THREAD_OF_PLATFORM_MESSAGE = (
    select(t.platform, w.external_id.label("workspace_id"), t.channel_id, t.thread_key)
    .join(THREADS, t.id == m.thread_id)
    .join(WORKSPACES, w.id == t.workspace_id)
    .where(m.platform_message_id == bindparam("b_platform_message_id"), m.thread_id.in_(_IN_CHANNEL))
    .limit(1)
)


async def thread_of_platform_message(
    runtime: Runtime, platform: str, workspace_id: str, channel_id: str, platform_message_id: str
) -> ThreadRef | None:
    """The thread of a message we stored (a user's or the bot's), by the platform's id for it."""
    params = _where_params(platform, workspace_id, channel_id, platform_message_id)
    async with runtime.autocommit.connect() as conn:
        row = (await conn.execute(_THREAD_OF_PLATFORM_MESSAGE, params)).first()
    return None if row is None else ThreadRef(row.platform, row.workspace_id, row.channel_id, row.thread_key)
