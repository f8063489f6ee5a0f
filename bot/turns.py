"""A chat turn: answer one user message in its thread (context -> LLM, streamed -> post -> persist)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col

from bot.context import gather_context, load_preferences
from bot.errors import ConfigurationError, PermanentUpstreamError
from bot.events import ThreadRef
from bot.models import Message, Thread, Workspace
from bot.ports import LLM, ChatPlatform
from bot.runtime import Runtime
from bot.streaming import ReplyStream
from bot.tokens import count_tokens

log = structlog.get_logger(__name__)


@dataclass
class TurnDeps:
    runtime: Runtime
    llm: LLM
    platforms: Mapping[str, ChatPlatform]


async def claim_turn(deps: TurnDeps, message_id: int) -> Message | None:
    """Mark the message `processing` and count the attempt; None if it is already answered or failed."""
    async with deps.runtime.sessions() as session, session.begin():
        result = await session.execute(
            update(Message)
            .where(col(Message.id) == message_id, col(Message.status).in_(("pending", "processing")))
            .values(status="processing", attempts=col(Message.attempts) + 1, updated_at=func.now())
            .returning(Message)
        )
        return result.scalars().first()


async def thread_ref(deps: TurnDeps, thread_id: int) -> ThreadRef:
    async with deps.runtime.sessions() as session:
        row = (
            await session.execute(
                select(col(Thread.platform), col(Workspace.external_id), col(Thread.channel_id), col(Thread.thread_key))
                .join(Workspace, col(Workspace.id) == col(Thread.workspace_id))
                .where(col(Thread.id) == thread_id)
            )
        ).one()
    return ThreadRef(platform=row[0], workspace_id=row[1], channel_id=row[2], thread_key=row[3])


def platform_for(deps: TurnDeps, thread: ThreadRef) -> ChatPlatform:
    platform = deps.platforms.get(thread.platform)
    if platform is None:
        raise ConfigurationError(f"no outbound client for platform {thread.platform!r} in this worker")
    return platform


async def answer_turn(deps: TurnDeps, message_id: int) -> bool:
    """Answer the message. Returns False when there was nothing to do (already answered). Raises
    `TransientUpstreamError` for the caller to retry and `PermanentUpstreamError` to fail the turn."""
    turn = await claim_turn(deps, message_id)
    if turn is None:
        return False
    thread = await thread_ref(deps, turn.thread_id)
    settings = deps.runtime.settings
    async with deps.runtime.sessions() as session:
        prefs = await load_preferences(session, thread.platform, thread.workspace_id, turn.author_id)
        prompt = await gather_context(session, settings, turn, prefs)
    log.info("turn context", message_id=message_id, tokens=prompt.tokens, history=prompt.history_included)

    stream = ReplyStream(platform_for(deps, thread), thread, key_prefix=f"reply:{message_id}")
    async for delta in deps.llm.stream_chat(prompt.messages, max_tokens=settings.max_reply_tokens):
        await stream.feed(delta)
    if not stream.text.strip():
        raise PermanentUpstreamError("llm", "empty reply", "The language model returned an empty answer. Try again.")
    posted = await stream.finish()

    async with deps.runtime.sessions() as session, session.begin():
        # reply_to_id is unique: a replayed turn overwrites its stored reply instead of adding a second one.
        values = {
            "thread_id": turn.thread_id,
            "role": "assistant",
            "author_id": "bot",
            "text": stream.text,
            "token_count": count_tokens(stream.text),
            "status": "completed",
            "platform_message_id": posted[0],
            "reply_to_id": message_id,
        }
        await session.execute(
            insert(Message)
            .values(**values)
            .on_conflict_do_update(
                index_elements=["reply_to_id"],
                set_={"text": values["text"], "token_count": values["token_count"], "updated_at": func.now()},
            )
        )
        await session.execute(
            update(Message)
            .where(col(Message.id) == message_id)
            .values(status="completed", error=None, updated_at=func.now())
        )
    log.info("turn answered", message_id=message_id, parts=len(posted), chars=len(stream.text))
    return True


async def fail_turn(deps: TurnDeps, message_id: int, user_message: str, detail: str) -> None:
    """Say in the thread that the turn failed, then mark it `failed`, once. The operator's detail goes to the
    log and the row. Posting first means a crash in between leaves the turn unfinished, so it is retried and
    the (idempotent) error post is not lost."""
    async with deps.runtime.sessions() as session:
        row = (
            await session.execute(
                select(col(Message.status), col(Message.thread_id)).where(col(Message.id) == message_id)
            )
        ).first()
    log.warning("turn failed", message_id=message_id, detail=detail)
    if row is None or row[0] in ("completed", "failed"):
        return
    thread = await thread_ref(deps, row[1])
    try:
        await platform_for(deps, thread).post_message(
            thread, f"⚠️ {user_message}", idempotency_key=f"error:{message_id}"
        )
    except Exception as exc:  # noqa: BLE001 (the failure is recorded below; a dead platform must not stop that)
        log.error("could not post the error reply", message_id=message_id, error=str(exc))
    async with deps.runtime.sessions() as session, session.begin():
        await session.execute(
            update(Message)
            .where(col(Message.id) == message_id, col(Message.status) != "completed")
            .values(status="failed", error=detail[:2000], updated_at=func.now())
        )
