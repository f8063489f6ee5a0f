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
from redis.exceptions import RedisError
from sqlalchemy import Insert, func, literal, select
from sqlalchemy.dialects.postgresql import insert

from bot.config import Settings
from bot.errors import InvalidInput, NotAllowed, RateLimited
from bot.events import IncomingMessage, ThreadRef
from bot.models import MESSAGES, THREADS, WORKSPACES
from bot.ratelimit import RateLimiter
from bot.runtime import WAKE_KEY, Runtime
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
        bound.info("intake duplicate delivery", message_id=existing.message_id)
        return Accepted(existing.message_id, existing.thread_id, job_id, duplicate=True)

    subject = f"{event.thread.platform}:{event.thread.workspace_id}:{event.user_id}"
    try:
        wait_s = await RateLimiter(runtime.redis, settings.rate_limit_per_minute).hit(subject)
    except (OSError, RedisError) as exc:
        # Fail open: refusing every message while Redis is down would lose more than the limit protects.
        bound.warning("rate limiter unavailable; letting the message through", error=str(exc))
        wait_s = None
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
        if job is not None:
            async with runtime.redis.pipeline(transaction=False) as pipe:
                # Wake one idle worker now rather than at its next poll; the trim bounds the list while none reads.
                pipe.lpush(WAKE_KEY, 1)
                pipe.ltrim(WAKE_KEY, 0, 999)
                await pipe.execute()
    except (OSError, RedisError) as exc:
        log.warning("enqueue failed; the sweep will retry", message_id=message_id, error=str(exc))
        return False
    return job is not None


@dataclass(frozen=True, slots=True)
class _Stored:
    message_id: int
    thread_id: int
    status: str
    job_id: str | None


async def _find_by_dedupe_key(runtime: Runtime, key: str) -> _Stored | None:
    m = MESSAGES.c
    async with runtime.autocommit.connect() as conn:
        row = (await conn.execute(select(m.id, m.thread_id, m.status, m.job_id).where(m.dedupe_key == key))).first()
    return _Stored(*row) if row is not None else None


async def _requeue_if_pending(runtime: Runtime, message: _Stored) -> None:
    # A crash between persist and enqueue leaves a pending row with no job; the retry delivery repairs it.
    if message.status == "pending" and message.job_id:
        await enqueue_turn(runtime, message.message_id, message.job_id)


def _persist_statement(event: IncomingMessage, text: str, key: str, job_id: str) -> Insert:
    """Workspace, thread and message in one statement: atomic, and one round trip on the intake path."""
    where = event.thread
    w, t = WORKSPACES.c, THREADS.c
    new_workspace = (
        insert(WORKSPACES)
        .values(platform=where.platform, external_id=where.workspace_id, name="")
        .on_conflict_do_nothing(constraint="uq_workspaces_platform_external")
        .returning(w.id)
        .cte("new_workspace")
    )
    workspace = (
        select(new_workspace.c.id)
        .union_all(select(w.id).where(w.platform == where.platform, w.external_id == where.workspace_id))
        .cte("workspace")
    )
    thread = (
        insert(THREADS)
        .from_select(
            ["platform", "workspace_id", "channel_id", "thread_key"],
            select(literal(where.platform), workspace.c.id, literal(where.channel_id), literal(where.thread_key)).limit(
                1
            ),
        )
        .on_conflict_do_update(constraint="uq_threads_location", set_={"updated_at": func.now()})
        .returning(t.id)
        .cte("thread")
    )
    values = {
        "role": "user",
        "author_id": event.user_id,
        "text": text,
        "token_count": count_tokens(text),
        "status": "pending",
        "dedupe_key": key,
        "job_id": job_id,
        "platform_message_id": event.platform_message_id or None,
        "attempts": 0,
    }
    return (
        insert(MESSAGES)
        .from_select(["thread_id", *values], select(thread.c.id, *(literal(v) for v in values.values())))
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(MESSAGES.c.id, MESSAGES.c.thread_id)
    )


async def _persist(runtime: Runtime, event: IncomingMessage, text: str, key: str, job_id: str) -> Accepted:
    statement = _persist_statement(event, text, key, job_id)
    # Two tries: a workspace created by a concurrent first message is invisible to this statement's snapshot,
    # which then inserts nothing; the second try sees it.
    for _ in range(2):
        async with runtime.autocommit.connect() as conn:
            row = (await conn.execute(statement)).first()
        if row is not None:
            return Accepted(message_id=row[0], thread_id=row[1], job_id=job_id)
        existing = await _find_by_dedupe_key(runtime, key)
        if existing is not None:
            return Accepted(existing.message_id, existing.thread_id, job_id, duplicate=True)
    raise RuntimeError(f"could not store message {key}")
