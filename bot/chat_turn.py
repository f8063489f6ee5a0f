"""A chat turn as a durable workflow: context -> LLM (streamed into the thread) -> store -> done.

Each step's outcome is kept in Postgres, so a retry or a crash resumes where it stopped: the prompt is gathered
once, a reply that was fully posted is not asked for again, and every post is keyed by run and step, so a
replayed step edits what it already posted instead of posting twice. A step that fails for good tells the user
in the thread (itself a step, so the notice is posted once) and marks the message `failed`.
"""

from __future__ import annotations

from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Select, Update, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert

from bot.context import PREFERENCE_COLUMNS, Preferences, Turn, gather_context
from bot.errors import ConfigurationError, PermanentUpstreamError, UpstreamError
from bot.events import ThreadRef
from bot.followups.assistant import SCHEDULE_FOLLOWUP, schedule_from_tool
from bot.intake import CHAT_TURN
from bot.media.retrieval import channel_key_sql, excerpts_prompt, has_chunks, search
from bot.models import MESSAGES, THREADS, USER_PREFERENCES, WORKSPACES
from bot.ports import ChatMessage, ToolCall
from bot.runtime import Runtime
from bot.streaming import open_reply
from bot.threads import THREAD_MESSAGE, thread_from_json, thread_to_json
from bot.tokens import count_tokens
from bot.workflows.errors import StepFailed
from bot.workflows.events import send_event
from bot.workflows.outbox import with_outbox
from bot.workflows.registry import workflow
from bot.workflows.steps import WorkflowContext

log = structlog.get_logger(__name__)
m = MESSAGES.c


@workflow(CHAT_TURN, description="Answer one user message in its thread.")
async def chat_turn(ctx: WorkflowContext, input: dict[str, Any]) -> dict[str, Any]:
    message_id: int = input["message_id"]
    settings = ctx.runtime.settings
    try:
        turn = await ctx.step.run("context", lambda: prepare(ctx, message_id))
        if turn is None:
            return {"skipped": "the message is gone or was answered already"}
        if turn["consumed"]:
            return {"consumed": True}
        reply = await ctx.step.run("reply", lambda: answer(ctx, turn), max_attempts=settings.llm_max_attempts)
        await ctx.step.run("store", lambda: store_reply(ctx.runtime, turn, reply["text"], reply["message_ids"][0]))
        return {"message_ids": reply["message_ids"]}
    except StepFailed as exc:
        failure = exc  # the name bound by `except` is cleared when the block ends; the lambda needs its own
        try:
            await ctx.step.run("tell-failure", lambda: tell_failure(ctx, message_id, failure), final=True)
        except StepFailed:
            # Not even the notice could be posted: still end the message, so no client waits on it for ever.
            error = f"{failure.error} (and the failure notice could not be posted)"
            await ctx.step.run("mark-failed", lambda: _set_status(ctx.runtime, message_id, "failed", error), final=True)
        raise


async def prepare(ctx: WorkflowContext, message_id: int) -> dict[str, Any] | None:
    """Claim the message, announce it to runs waiting on the thread, and gather the prompt."""
    claimed = await claim_message(ctx.runtime, message_id)
    if claimed is None:
        return None
    turn, thread, prefs = claimed.turn, claimed.thread, claimed.prefs
    sent = await send_event(
        ctx.runtime,
        THREAD_MESSAGE,
        {"thread_id": turn.thread_id, "message_id": message_id, "user_id": turn.author_id, "text": turn.text},
        dedupe_key=f"message:{message_id}",
    )
    if sent.consumed:
        # A run asked this user a question in this thread and takes this message as the answer.
        await _set_status(ctx.runtime, message_id, "completed")
        return {"consumed": True}
    async with ctx.runtime.autocommit.connect() as conn:
        prompt = await gather_context(conn, ctx.runtime.settings, turn, prefs)
    media_here = ctx.runtime.settings.retrieval_chunks > 0 and claimed.media_nearby
    messages = await with_excerpts(ctx, prompt.messages, turn, thread) if media_here else prompt.messages
    return {
        "consumed": False,
        "message_id": message_id,
        "thread_id": turn.thread_id,
        "thread": thread_to_json(thread),
        "user_id": turn.author_id,
        "messages": [{"role": msg.role, "content": msg.content} for msg in messages],
        "history": prompt.history_included,
    }


async def with_excerpts(
    ctx: WorkflowContext, messages: list[ChatMessage], turn: Turn, thread: ThreadRef
) -> list[ChatMessage]:
    """Add the transcript excerpts closest to the question (files were shared in this thread or channel).
    Retrieval is a help, not a requirement: if embedding fails the turn goes on without excerpts."""
    try:
        # No database connection is held while the embeddings API answers.
        [vector] = await ctx.deps.llm.embed([turn.text])
    except UpstreamError as exc:
        log.warning("retrieval skipped: embedding the question failed", error=str(exc))
        return messages
    limit = ctx.runtime.settings.retrieval_chunks
    async with ctx.runtime.autocommit.connect() as conn:
        excerpts = await search(conn, vector, thread_id=turn.thread_id, thread=thread, limit=limit)
    if not excerpts:
        return messages
    # After the system prompt, before the history: the model reads it as background, not as the question.
    return [messages[0], ChatMessage("system", excerpts_prompt(excerpts)), *messages[1:]]


async def answer(ctx: WorkflowContext, turn: dict[str, Any]) -> dict[str, Any]:
    thread = thread_from_json(turn["thread"])
    platform = with_outbox(ctx.deps.platform_for(thread), ctx.runtime, ctx.run_id)
    await platform.show_working(thread, "is thinking…")
    stream = open_reply(platform, thread, ctx.key("reply"))
    messages = [ChatMessage(role=msg["role"], content=msg["content"]) for msg in turn["messages"]]
    settings = ctx.runtime.settings
    tools = (SCHEDULE_FOLLOWUP,) if settings.assistant_followups else ()
    calls: list[ToolCall] = []
    # aclosing: if posting fails mid-stream, the HTTP stream to the model is closed now, not at garbage collection.
    async with aclosing(
        ctx.deps.llm.stream_chat(messages, max_tokens=settings.max_reply_tokens, tools=tools, tool_calls=calls)
    ) as deltas:
        async for delta in deltas:
            await stream.feed(delta)
    # The model's tool calls are acted on here and confirmed in the reply (no second model round trip).
    notes = [
        await schedule_from_tool(ctx, turn, call, index)
        for index, call in enumerate(calls)
        if call.name == SCHEDULE_FOLLOWUP.name
    ]
    if notes:
        await stream.feed(("\n\n" if stream.text.strip() else "") + "\n".join(notes))
    if not stream.text.strip():
        raise PermanentUpstreamError("llm", "empty reply", "The language model returned an empty answer. Try again.")
    posted = await stream.finish()
    return {"text": stream.text, "message_ids": posted}


async def tell_failure(ctx: WorkflowContext, message_id: int, failed: StepFailed) -> None:
    """Say in the thread that the turn failed, then mark the message `failed`. The post goes first: if it fails,
    this step is retried, so the user is told in the end instead of the row saying `failed` to nobody."""
    thread = await _thread_of(ctx.runtime, message_id)
    log.warning("turn failed", message_id=message_id, detail=failed.error)
    if thread is not None:
        platform = with_outbox(ctx.deps.platform_for(thread), ctx.runtime, ctx.run_id)
        try:
            await platform.post_message(thread, f"⚠️ {failure_text(failed)}", idempotency_key=ctx.key("tell-failure"))
        except (PermanentUpstreamError, ConfigurationError) as refused:
            # The platform will not take a post here at all (no permission, channel gone): nobody can be told,
            # so the log says it and the message is failed rather than retried for ever.
            log.warning("could not tell the user the turn failed", message_id=message_id, error=str(refused))
    await _set_status(ctx.runtime, message_id, "failed", error=failed.error[:2000])


SERVICE_NAMES = {"llm": "the language model", "deepgram": "transcription (Deepgram)", "s3": "file storage"}


def failure_reason(failed: StepFailed) -> str:
    """Why a step failed, in words for the user (never the internal error, which is for the logs)."""
    if failed.user_message:
        return failed.user_message
    if failed.reason == "gave_up":
        what = SERVICE_NAMES.get(failed.service, failed.service or "a service I depend on")
        return f"{what} kept failing ({failed.attempts} attempts). Please try again later."
    if failed.reason == "interrupted":
        return "I tried several times and could not answer this."
    return "something went wrong on my side. The operators have the details in the logs."


def failure_text(failed: StepFailed) -> str:
    if not failed.user_message and failed.reason not in ("gave_up", "interrupted"):
        return "Something went wrong on my side while answering. The operators have the details in the logs."
    return f"I couldn't answer: {failure_reason(failed)}"


def _claim_message_statement() -> Select[Any]:
    t, w, p = THREADS.c, WORKSPACES.c, USER_PREFERENCES.c
    claimed = (
        update(MESSAGES)
        .where(m.id == bindparam("message_id"), m.status.in_(("pending", "processing", "failed")))
        .values(status="processing", attempts=m.attempts + 1, updated_at=func.now())
        .returning(m.id, m.thread_id, m.author_id, m.text, m.token_count, m.attempts)
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
            t.platform,
            w.external_id,
            t.channel_id,
            t.thread_key,
            has_chunks(c.thread_id, channel_key_sql(t.platform, w.external_id, t.channel_id)),
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


# Built once (bind parameters named b_* where a column of that name is set): building a statement costs more
# CPU than running it.
_CLAIM_MESSAGE = _claim_message_statement()
_STORE_REPLY = _store_reply_statement()


@dataclass(frozen=True, slots=True)
class Claimed:
    turn: Turn
    thread: ThreadRef
    prefs: Preferences | None
    # Transcript chunks exist in this thread or its channel: the turn looks for excerpts to add.
    media_nearby: bool


async def claim_message(runtime: Runtime, message_id: int) -> Claimed | None:
    """Mark the message `processing` and load it with its thread, the author's preferences and whether media were
    shared nearby, in one statement. None if it no longer exists or was answered already."""
    async with runtime.autocommit.connect() as conn:
        row = (await conn.execute(_CLAIM_MESSAGE, {"message_id": message_id})).first()
    if row is None:
        return None
    thread = ThreadRef(platform=row[6], workspace_id=row[7], channel_id=row[8], thread_key=row[9])
    return Claimed(Turn(*row[:6]), thread, Preferences(*row[12:]) if row[11] else None, media_nearby=bool(row[10]))


async def store_reply(runtime: Runtime, turn: dict[str, Any], text: str, platform_message_id: str) -> None:
    """Store the reply and complete the message in one statement. reply_to_id is unique, so a replayed step
    overwrites its stored reply instead of adding a second one."""
    params = {
        "b_thread_id": turn["thread_id"],
        "b_message_id": turn["message_id"],
        "b_text": text,
        "b_tokens": count_tokens(text),
        "b_platform_message_id": platform_message_id,
    }
    async with runtime.autocommit.connect() as conn:
        await conn.execute(_STORE_REPLY, params)


async def _set_status(runtime: Runtime, message_id: int, status: str, error: str | None = None) -> None:
    async with runtime.autocommit.connect() as conn:
        await conn.execute(
            update(MESSAGES)
            .where(m.id == message_id, m.status != "completed")
            .values(status=status, error=error, updated_at=func.now())
        )


async def _thread_of(runtime: Runtime, message_id: int) -> ThreadRef | None:
    t, w = THREADS.c, WORKSPACES.c
    query = (
        select(t.platform, w.external_id, t.channel_id, t.thread_key)
        .join(THREADS, t.id == m.thread_id)
        .join(WORKSPACES, w.id == t.workspace_id)
        .where(m.id == message_id)
    )
    async with runtime.autocommit.connect() as conn:
        row = (await conn.execute(query)).first()
    return None if row is None else ThreadRef(*row)
