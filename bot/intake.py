"""Intake: the one door every platform's messages go through.

validate -> authorize -> dedupe -> rate-limit -> persist (pending) -> enqueue. It answers in milliseconds and
never calls an LLM. Rejections raise `UserFacingError` subclasses whose text the adapter shows the user;
nothing is written before every check has passed, and the message row, its thread and its workspace are
written in one transaction.
"""

from __future__ import annotations

import unicodedata
from dataclasses import asdict, dataclass
from typing import Any

import structlog
from redis.exceptions import RedisError
from sqlalchemy import Integer, Select, String, Text, bindparam, func, literal, select, true
from sqlalchemy.dialects.postgresql import JSONB, insert

from bot.config import Settings
from bot.errors import InvalidInput, NotAllowed, RateLimited
from bot.events import IncomingMessage, ThreadRef
from bot.media.accept import check_files
from bot.models import MESSAGES, THREADS, WORKSPACES
from bot.ratelimit import RateLimiter
from bot.runtime import Runtime
from bot.tokens import count_tokens
from bot.workflows.models import RUNS
from bot.workflows.runs import enqueue_run

# The workflows a message starts, named here so intake does not import the worker's code: bot.chat_turn answers
# text, bot.media.workflow digests the files a message shares.
CHAT_TURN = "chat_turn"
MEDIA_TURN = "media_turn"

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Accepted:
    message_id: int
    thread_id: int
    run_id: int
    duplicate: bool = False


def dedupe_key(event: IncomingMessage) -> str:
    return f"{event.thread.platform}:{event.thread.workspace_id}:{event.event_id}"


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
    check_files(event.files, settings)

    key = dedupe_key(event)
    # A platform's retry of an event we already hold must not cost the user a rate-limit token.
    existing = await _find_by_dedupe_key(runtime, key)
    if existing is not None:
        await _requeue_if_pending(runtime, existing)
        bound.info("intake duplicate delivery", message_id=existing.message_id)
        return Accepted(existing.message_id, existing.thread_id, existing.run_id, duplicate=True)

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

    accepted = await _persist(runtime, event, text, key)
    if accepted.duplicate:
        bound.info("intake duplicate delivery (raced)", message_id=accepted.message_id)
        return accepted
    await enqueue_run(runtime, accepted.run_id, 0)
    bound.info("intake accepted", message_id=accepted.message_id, run_id=accepted.run_id)
    return accepted


@dataclass(frozen=True, slots=True)
class _Stored:
    message_id: int
    thread_id: int
    run_id: int
    run_status: str
    wake_seq: int


_FIND = (
    select(MESSAGES.c.id, MESSAGES.c.thread_id, RUNS.c.id, RUNS.c.status, RUNS.c.wake_seq)
    .join(RUNS, RUNS.c.id == MESSAGES.c.run_id)
    .where(MESSAGES.c.dedupe_key == bindparam("key"))
)


async def _find_by_dedupe_key(runtime: Runtime, key: str) -> _Stored | None:
    async with runtime.autocommit.connect() as conn:
        row = (await conn.execute(_FIND, {"key": key})).first()
    return _Stored(*row) if row is not None else None


async def _requeue_if_pending(runtime: Runtime, message: _Stored) -> None:
    # A crash between persist and enqueue leaves a pending run with no job; the retry delivery repairs it
    # (arq ignores the job id if the job still exists).
    if message.run_status == "pending":
        await enqueue_run(runtime, message.run_id, message.wake_seq)


def _persist_statement() -> Select[Any]:
    """Workspace, thread, message and the run answering it in one statement: atomic, and one round trip on the
    intake path. The run's id is drawn first so the message can carry it. Built once, run with parameters
    (named b_*: SQLAlchemy reserves the names of the columns a statement sets)."""
    w, t = WORKSPACES.c, THREADS.c
    platform, workspace_id = bindparam("b_platform", type_=String), bindparam("b_workspace", type_=String)
    new_workspace = (
        insert(WORKSPACES)
        .values(platform=platform, external_id=workspace_id, name="")
        .on_conflict_do_nothing(constraint="uq_workspaces_platform_external")
        .returning(w.id)
        .cte("new_workspace")
    )
    workspace = (
        select(new_workspace.c.id)
        .union_all(select(w.id).where(w.platform == platform, w.external_id == workspace_id))
        .cte("workspace")
    )
    location = (platform, workspace.c.id, bindparam("b_channel", type_=String), bindparam("b_thread", type_=String))
    thread = (
        insert(THREADS)
        .from_select(["platform", "workspace_id", "channel_id", "thread_key"], select(*location).limit(1))
        .on_conflict_do_update(constraint="uq_threads_location", set_={"updated_at": func.now()})
        .returning(t.id)
        .cte("thread")
    )
    run_id = select(func.nextval("workflow_runs_id_seq").label("id")).cte("run_id")
    user = bindparam("b_user", type_=String)
    values = {
        "role": literal("user"),
        "author_id": user,
        "text": bindparam("b_text", type_=Text),
        "token_count": bindparam("b_tokens", type_=Integer),
        "status": literal("pending"),
        "dedupe_key": bindparam("b_key", type_=String),
        "platform_message_id": bindparam("b_platform_message_id", type_=String),
        "attempts": literal(0),
        "files": bindparam("b_files", type_=JSONB(none_as_null=True)),
    }
    message = (
        insert(MESSAGES)
        .from_select(
            ["thread_id", "run_id", *values],
            # Both sides are one row; the explicit join says the product is intended.
            select(thread.c.id, run_id.c.id, *values.values()).select_from(thread.join(run_id, true())),
        )
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(MESSAGES.c.id, MESSAGES.c.thread_id, MESSAGES.c.run_id)
        .cte("message")
    )
    run = (
        insert(RUNS)
        .from_select(
            ["id", "workflow", "input", "status", "thread_id", "user_id", "wake_seq", "wake_at", "attempts", "rescues"],
            select(
                message.c.run_id,
                bindparam("b_workflow", type_=String),
                func.jsonb_build_object("message_id", message.c.id),
                literal("pending"),
                message.c.thread_id,
                user,
                literal(0),
                func.now(),
                literal(0),
                literal(0),
            ),
        )
        .returning(RUNS.c.id)
        .cte("run")
    )
    return select(message.c.id, message.c.thread_id, run.c.id).join(run, run.c.id == message.c.run_id)


_PERSIST = _persist_statement()


async def _persist(runtime: Runtime, event: IncomingMessage, text: str, key: str) -> Accepted:
    where = event.thread
    params = {
        "b_platform": where.platform,
        "b_workspace": where.workspace_id,
        "b_channel": where.channel_id,
        "b_thread": where.thread_key,
        "b_user": event.user_id,
        "b_text": text,
        "b_tokens": count_tokens(text),
        "b_key": key,
        "b_platform_message_id": event.platform_message_id or None,
        "b_files": [asdict(file) for file in event.files] or None,
        "b_workflow": MEDIA_TURN if event.files else CHAT_TURN,
    }
    # Two tries: a workspace created by a concurrent first message is invisible to this statement's snapshot,
    # which then inserts nothing; the second try sees it.
    for _ in range(2):
        async with runtime.autocommit.connect() as conn:
            row = (await conn.execute(_PERSIST, params)).first()
        if row is not None:
            return Accepted(message_id=row[0], thread_id=row[1], run_id=row[2])
        existing = await _find_by_dedupe_key(runtime, key)
        if existing is not None:
            return Accepted(existing.message_id, existing.thread_id, existing.run_id, duplicate=True)
    raise RuntimeError(f"could not store message {key}")
