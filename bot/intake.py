"""Intake: the one door every platform's messages go through.

validate -> authorize -> dedupe -> rate-limit -> persist (pending) -> enqueue. It answers in milliseconds and
never calls an LLM. Rejections raise `UserFacingError` subclasses whose text the adapter shows the user;
nothing is written before every check has passed, and the message row, its thread and its workspace are
written in one transaction.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass

import structlog
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col

from bot.config import Settings
from bot.errors import InvalidInput, NotAllowed, RateLimited
from bot.events import IncomingMessage, ThreadRef
from bot.models import Message, Thread, Workspace
from bot.ratelimit import RateLimiter
from bot.runtime import Runtime
from bot.tokens import count_tokens

log = structlog.get_logger(__name__)

PROCESS_MESSAGE_JOB = "process_message"


@dataclass(frozen=True, slots=True)
class Accepted:
    message_id: int
    thread_id: int
    job_id: str
    duplicate: bool = False


def dedupe_key(event: IncomingMessage) -> str:
    return f"{event.thread.platform}:{event.thread.workspace_id}:{event.event_id}"


def job_id_for(key: str) -> str:
    """The arq job id for a delivery: the same event always maps to the same job, so arq refuses a second one."""
    return "turn:" + hashlib.sha256(key.encode()).hexdigest()[:40]


def validate_text(raw: str | bytes, settings: Settings) -> str:
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(
                f"I couldn't read that message: it isn't valid UTF-8 text (bad byte at position {exc.start})."
            ) from None
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("I couldn't read that message: it contains broken characters (lone surrogates).") from None
    if "\x00" in raw:
        raise InvalidInput("I couldn't read that message: it contains a NUL character.")
    text = unicodedata.normalize("NFC", raw).strip()
    if not text:
        raise InvalidInput("Your message is empty. Write something and I'll answer.")
    if len(text) > settings.max_message_chars:
        raise InvalidInput(
            f"Your message is {len(text):,} characters long; the limit is {settings.max_message_chars:,}. "
            "Shorten it or send it as a file."
        )
    return text


def authorize(thread: ThreadRef, user_id: str, settings: Settings) -> None:
    checks = (
        (settings.allowed_workspaces, thread.workspace_id, "this workspace"),
        (settings.allowed_channels, thread.channel_id, "this channel"),
        (settings.allowed_users, user_id, "you"),
    )
    for allowed, value, who in checks:
        if allowed and value not in allowed:
            log.info("intake refused by allowlist", who=who, value=value)
            raise NotAllowed(f"Sorry, I'm not enabled for {who}. Ask an administrator to add {who} to my allowlist.")


async def accept(runtime: Runtime, event: IncomingMessage) -> Accepted:
    """Accept a user's message for an answer, or raise a `UserFacingError` saying why not."""
    settings = runtime.settings
    bound = log.bind(event_id=event.event_id, platform=event.thread.platform, user=event.user_id)
    text = validate_text(event.text, settings)
    authorize(event.thread, event.user_id, settings)

    key = dedupe_key(event)
    job_id = job_id_for(key)
    # A platform's retry of an event we already hold must not cost the user a rate-limit token.
    existing = await _find_by_dedupe_key(runtime, key)
    if existing is not None:
        await _requeue_if_pending(runtime, existing)
        bound.info("intake duplicate delivery", message_id=existing.id)
        return Accepted(message_id=_id(existing.id), thread_id=existing.thread_id, job_id=job_id, duplicate=True)

    subject = f"{event.thread.platform}:{event.thread.workspace_id}:{event.user_id}"
    wait_s = await RateLimiter(runtime.redis, settings.rate_limit_per_minute).hit(subject)
    if wait_s is not None:
        bound.info("intake rate limited", retry_after_s=round(wait_s, 1))
        raise RateLimited(
            f"You're sending messages faster than I can take them ({settings.rate_limit_per_minute} a minute). "
            f"Try again in {max(1, round(wait_s))} s.",
            retry_after_s=wait_s,
        )

    accepted = await _persist(runtime, event, text, key, job_id)
    if accepted.duplicate:
        bound.info("intake duplicate delivery (raced)", message_id=accepted.message_id)
        return accepted
    await enqueue_turn(runtime, accepted.message_id, job_id)
    bound.info("intake accepted", message_id=accepted.message_id, job_id=job_id)
    return accepted


async def enqueue_turn(runtime: Runtime, message_id: int, job_id: str) -> bool:
    """Queue the turn; arq ignores a job id it already holds. A Redis failure leaves the message `pending` in
    Postgres, where the worker's sweep finds it, so nothing is lost."""
    try:
        job = await runtime.redis.enqueue_job(PROCESS_MESSAGE_JOB, message_id, _job_id=job_id)
    except (OSError, ConnectionError) as exc:
        log.warning("enqueue failed; the sweep will retry", message_id=message_id, error=str(exc))
        return False
    return job is not None


async def _find_by_dedupe_key(runtime: Runtime, key: str) -> Message | None:
    async with runtime.sessions() as session:
        result = await session.execute(select(Message).where(col(Message.dedupe_key) == key))
        found: Message | None = result.scalars().first()
        return found


async def _requeue_if_pending(runtime: Runtime, message: Message) -> None:
    # A crash between persist and enqueue leaves a pending row with no job; the retry delivery repairs it.
    if message.status == "pending" and message.job_id:
        await enqueue_turn(runtime, _id(message.id), message.job_id)


async def _persist(runtime: Runtime, event: IncomingMessage, text: str, key: str, job_id: str) -> Accepted:
    thread = event.thread
    async with runtime.sessions() as session, session.begin():
        await session.execute(
            insert(Workspace)
            .values(platform=thread.platform, external_id=thread.workspace_id)
            .on_conflict_do_nothing(constraint="uq_workspaces_platform_external")
        )
        workspace_id = (
            await session.execute(
                select(col(Workspace.id)).where(
                    col(Workspace.platform) == thread.platform, col(Workspace.external_id) == thread.workspace_id
                )
            )
        ).scalar_one()
        thread_id = (
            await session.execute(
                insert(Thread)
                .values(
                    platform=thread.platform,
                    workspace_id=workspace_id,
                    channel_id=thread.channel_id,
                    thread_key=thread.thread_key,
                )
                .on_conflict_do_update(constraint="uq_threads_location", set_={"updated_at": func.now()})
                .returning(col(Thread.id))
            )
        ).scalar_one()
        message_id = (
            await session.execute(
                insert(Message)
                .values(
                    thread_id=thread_id,
                    role="user",
                    author_id=event.user_id,
                    text=text,
                    token_count=count_tokens(text),
                    status="pending",
                    dedupe_key=key,
                    job_id=job_id,
                    platform_message_id=event.platform_message_id or None,
                )
                .on_conflict_do_nothing(index_elements=["dedupe_key"])
                .returning(col(Message.id))
            )
        ).scalar_one_or_none()
    if message_id is None:
        existing = await _find_by_dedupe_key(runtime, key)
        assert existing is not None
        return Accepted(message_id=_id(existing.id), thread_id=existing.thread_id, job_id=job_id, duplicate=True)
    return Accepted(message_id=message_id, thread_id=_id(thread_id), job_id=job_id)


def _id(value: int | None) -> int:
    assert value is not None, "rows read from the database have ids"
    return value
