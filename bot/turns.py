"""A chat turn: answer one user message in its thread (context -> LLM, streamed -> post -> persist).

Each database step is one statement on an autocommit connection (atomic on its own, no BEGIN/COMMIT round
trips): claim with the thread and preferences, read the history, store the reply together with the new status.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import aclosing
from dataclasses import dataclass, field

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert

from bot.context import PREFERENCE_COLUMNS, Preferences, Turn, gather_context
from bot.errors import ConfigurationError, PermanentUpstreamError
from bot.events import ThreadRef
from bot.models import MESSAGES, THREADS, USER_PREFERENCES, WORKSPACES
from bot.ports import LLM, ChatPlatform, FileSource
from bot.runtime import Runtime
from bot.streaming import open_reply
from bot.tokens import count_tokens

log = structlog.get_logger(__name__)
m = MESSAGES.c


@dataclass
class TurnDeps:
    runtime: Runtime
    llm: LLM
    platforms: Mapping[str, ChatPlatform]
    files: Mapping[str, FileSource] = field(default_factory=dict)


async def claim_turn(deps: TurnDeps, message_id: int) -> tuple[Turn, ThreadRef, Preferences | None] | None:
    """Mark the message `processing`, count the attempt, and load its thread and the author's preferences, in
    one statement. None if the message is already answered or failed."""
    t, w, p = THREADS.c, WORKSPACES.c, USER_PREFERENCES.c
    claimed = (
        update(MESSAGES)
        .where(m.id == message_id, m.status.in_(("pending", "processing")))
        .values(status="processing", attempts=m.attempts + 1, updated_at=func.now())
        .returning(m.id, m.thread_id, m.author_id, m.text, m.token_count, m.attempts)
        .cte("claimed")
    )
    c = claimed.c
    query = (
        select(
            c.id,
            c.thread_id,
            c.author_id,
            c.text,
            c.token_count,
            c.attempts,
            t.platform,
            w.external_id,
            t.channel_id,
            t.thread_key,
            p.id.is_not(None),
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
    async with deps.runtime.autocommit.connect() as conn:
        row = (await conn.execute(query)).first()
    if row is None:
        return None
    thread = ThreadRef(platform=row[6], workspace_id=row[7], channel_id=row[8], thread_key=row[9])
    return Turn(*row[:6]), thread, Preferences(*row[11:]) if row[10] else None


def platform_for(deps: TurnDeps, thread: ThreadRef) -> ChatPlatform:
    platform = deps.platforms.get(thread.platform)
    if platform is None:
        raise ConfigurationError(f"no outbound client for platform {thread.platform!r} in this worker")
    return platform


async def answer_turn(deps: TurnDeps, message_id: int) -> bool:
    """Answer the message. Returns False when there was nothing to do (already answered). Raises
    `TransientUpstreamError` for the caller to retry and `PermanentUpstreamError` to fail the turn."""
    claimed = await claim_turn(deps, message_id)
    if claimed is None:
        return False
    turn, thread, prefs = claimed
    settings = deps.runtime.settings
    # Attempts are counted in Postgres across jobs: a turn whose jobs keep dying (timeouts, crashes) without
    # reaching the retry policy still ends, with an error the user sees.
    if turn.attempts > settings.llm_max_attempts + 2:
        raise PermanentUpstreamError(
            "bot", f"gave up after {turn.attempts} attempts", "I tried several times and could not answer this."
        )
    async with deps.runtime.autocommit.connect() as conn:
        prompt = await gather_context(conn, settings, turn, prefs)

    stream = open_reply(platform_for(deps, thread), thread, f"reply:{message_id}")
    # aclosing: if posting fails mid-stream, the HTTP stream to the model is closed now, not at garbage collection.
    async with aclosing(deps.llm.stream_chat(prompt.messages, max_tokens=settings.max_reply_tokens)) as deltas:
        async for delta in deltas:
            await stream.feed(delta)
    if not stream.text.strip():
        raise PermanentUpstreamError("llm", "empty reply", "The language model returned an empty answer. Try again.")
    posted = await stream.finish()
    await store_reply(deps, turn, stream.text, posted[0])
    log.debug("turn answered", message_id=message_id, parts=len(posted), history=prompt.history_included)
    return True


async def recorded_attempts(deps: TurnDeps, message_id: int) -> int:
    async with deps.runtime.autocommit.connect() as conn:
        return int((await conn.execute(select(m.attempts).where(m.id == message_id))).scalar_one_or_none() or 0)


async def store_reply(deps: TurnDeps, turn: Turn, text: str, platform_message_id: str) -> None:
    """Store the reply and complete the turn in one statement. reply_to_id is unique, so a replayed turn
    overwrites its stored reply instead of adding a second one."""
    reply = (
        insert(MESSAGES)
        .values(
            thread_id=turn.thread_id,
            role="assistant",
            author_id="bot",
            text=text,
            token_count=count_tokens(text),
            status="completed",
            platform_message_id=platform_message_id,
            reply_to_id=turn.message_id,
            attempts=0,
        )
        .on_conflict_do_update(
            index_elements=["reply_to_id"],
            set_={"text": text, "token_count": count_tokens(text), "updated_at": func.now()},
        )
        .returning(m.id)
        .cte("reply")
    )
    complete = (
        update(MESSAGES)
        .where(m.id == turn.message_id, select(reply.c.id).exists())
        .values(status="completed", error=None, updated_at=func.now())
    )
    async with deps.runtime.autocommit.connect() as conn:
        await conn.execute(complete)


async def fail_turn(deps: TurnDeps, message_id: int, user_message: str, detail: str) -> None:
    """Say in the thread that the turn failed, then mark it `failed`, once. The operator's detail goes to the
    log and the row. Posting first means a crash in between leaves the turn unfinished, so it is retried and
    the (idempotent) error post is not lost."""
    t, w = THREADS.c, WORKSPACES.c
    query = (
        select(m.status, t.platform, w.external_id, t.channel_id, t.thread_key)
        .join(THREADS, t.id == m.thread_id)
        .join(WORKSPACES, w.id == t.workspace_id)
        .where(m.id == message_id)
    )
    async with deps.runtime.autocommit.connect() as conn:
        row = (await conn.execute(query)).first()
    log.warning("turn failed", message_id=message_id, detail=detail)
    if row is None or row[0] in ("completed", "failed"):
        return
    thread = ThreadRef(platform=row[1], workspace_id=row[2], channel_id=row[3], thread_key=row[4])
    # If this post fails the exception propagates and the turn stays unfinished: the sweep retries it, so the
    # user is told in the end instead of the row saying `failed` to nobody.
    await platform_for(deps, thread).post_message(thread, f"⚠️ {user_message}", idempotency_key=f"error:{message_id}")
    async with deps.runtime.autocommit.connect() as conn:
        await conn.execute(
            update(MESSAGES)
            .where(m.id == message_id, m.status != "completed")
            .values(status="failed", error=detail[:2000], updated_at=func.now())
        )
