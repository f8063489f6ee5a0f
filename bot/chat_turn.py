"""A chat turn as a durable workflow: context -> LLM (streamed into the thread) -> store -> done.

Each step's outcome is kept in Postgres, so a retry or a crash resumes where it stopped: the prompt is gathered
once, a reply that was fully posted is not asked for again, and every post is keyed by run and step, so a
replayed step edits what it already posted instead of posting twice. A step that fails for good tells the user
in the thread (itself a step, so the notice is posted once) and marks the message `failed`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from pydantic import TypeAdapter

from bot.context import Prompt, Turn, gather_context
from bot.costs.metered import metered
from bot.costs.usage import Payer
from bot.errors import InvalidInput, PermanentUpstreamError, UpstreamError
from bot.events import FileRef, ThreadRef
from bot.failures import tell_failure
from bot.followups.assistant import SCHEDULE_FOLLOWUP, schedule_from_tool
from bot.images import data_urls, pictures
from bot.intake import CHAT_TURN
from bot.media.retrieval import excerpts_prompt, search
from bot.ports import ChatMessage, ToolCall
from bot.stores import messages
from bot.streaming import open_reply, pump
from bot.thread_turns import take_turn
from bot.threads import THREAD_MESSAGE
from bot.workflows.errors import RunAborted, StepFailed
from bot.workflows.events import Sent, send_event
from bot.workflows.registry import workflow
from bot.workflows.steps import WorkflowContext

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ChatTurnInput:
    message_id: int
    platform: str = ""  # the thread's, for its CONVERSATION_STRATEGIES entry ("": read it from the message)


@dataclass(frozen=True, slots=True)
class PreparedTurn:
    """The `context` step's result: the prompt, gathered once, and where the answer goes."""

    message_id: int
    thread_id: int
    thread: ThreadRef
    user_id: str
    messages: list[ChatMessage]
    history: int  # earlier messages of the thread in the prompt
    consumed: Literal[False] = False
    # Earlier messages this turn answers too (a burst taken at once; bot.thread_turns), oldest first.
    along: tuple[int, ...] = ()
    # The message shared files: in a chat turn, pictures to show the model with it (bot.images).
    files: bool = False


@dataclass(frozen=True, slots=True)
class Consumed:
    """The `context` step's result when the message was the answer a waiting run asked for: no reply of its own."""

    consumed: Literal[True] = True


# The `consumed` field tells the two apart in the stored JSON (as it did when both were dicts); None: no message.
CONTEXT = TypeAdapter[PreparedTurn | Consumed | None](PreparedTurn | Consumed | None)


@dataclass(frozen=True, slots=True)
class PostedReply:
    text: str
    message_ids: list[str]


@workflow(CHAT_TURN, input=ChatTurnInput, description="Answer one user message in its thread.")
async def chat_turn(ctx: WorkflowContext, input: ChatTurnInput) -> dict[str, Any]:
    message_id = input.message_id
    settings = ctx.runtime.settings
    turn: PreparedTurn | Consumed | None = None
    try:
        turn = await ctx.step.run("context", lambda: prepare(ctx, message_id, input.platform), result=CONTEXT)
        if turn is None:
            return {"skipped": "the message is gone, or answered already or with a later one"}
        if isinstance(turn, Consumed):
            return {"consumed": True}
        prepared = turn  # narrowed, for the lambdas
        reply = await ctx.step.run(
            "reply", lambda: answer(ctx, prepared), result=PostedReply, max_attempts=settings.llm_max_attempts
        )
        await ctx.step.run(
            "store",
            lambda: messages.store_reply(
                ctx.runtime,
                thread_id=prepared.thread_id,
                message_id=message_id,
                text=reply.text,
                platform_message_id=reply.message_ids[0],
                along=prepared.along,
            ),
        )
        return {"message_ids": reply.message_ids}
    except StepFailed as exc:
        failure = exc  # the name bound by `except` is cleared when the block ends; the lambda needs its own
        along = turn.along if isinstance(turn, PreparedTurn) else ()
        try:
            await ctx.step.run("tell-failure", lambda: tell_failure(ctx, message_id, failure, along), final=True)
        except StepFailed:
            # Not even the notice could be posted: still end the message, so no client waits on it for ever.
            error = f"{failure.error} (and the failure notice could not be posted)"
            await ctx.step.run(
                "mark-failed",
                lambda: messages.set_status(ctx.runtime, message_id, "failed", error, along=along),
                final=True,
            )
        raise


async def prepare(ctx: WorkflowContext, message_id: int, platform: str = "") -> PreparedTurn | Consumed | None:
    """Announce the message to runs waiting on the thread, wait for the thread's turn where the strategy says so,
    claim the message (and those answered with it) and gather the prompt."""
    strategy = await _strategy(ctx, message_id, platform)
    if strategy == "concurrent":
        return await _prepare_at_once(ctx, message_id)
    turn = await _load(ctx, message_id)
    if turn is None:
        return None
    sent = await _announce(ctx, turn)
    if sent.consumed:
        await messages.set_status(ctx.runtime, message_id, "completed")
        return Consumed()
    taken = await take_turn(ctx, turn.thread_id, message_id, strategy)
    if taken is None:
        return None
    claimed = await messages.claim_message(ctx.runtime, message_id)
    if claimed is None:
        return None
    async with ctx.runtime.autocommit.connect() as conn:
        prompt = await gather_context(conn, ctx.runtime.settings, claimed.turn, claimed.prefs)
    along = tuple(i for i in taken if i != message_id)
    return await _prepared(ctx, claimed, prompt, along)


async def _strategy(ctx: WorkflowContext, message_id: int, platform: str) -> str:
    settings = ctx.runtime.settings
    if platform or not settings.conversation_strategies:
        return settings.strategy_for(platform)
    thread = await messages.thread_of(ctx.runtime, message_id)  # a run started without its platform
    return settings.strategy_for(thread.platform) if thread is not None else settings.conversation_strategy


async def _load(ctx: WorkflowContext, message_id: int) -> Turn | None:
    async with ctx.runtime.autocommit.connect() as conn:
        return await messages.load_turn(conn, message_id)


def _announce(ctx: WorkflowContext, turn: Turn) -> Awaitable[Sent]:
    """The thread.message event, once per message (its dedupe key): a run asking this user a question in this
    thread takes the message as its answer, and a follow-up waiting for the thread to go quiet stops waiting."""
    return send_event(
        ctx.runtime,
        THREAD_MESSAGE,
        {"thread_id": turn.thread_id, "message_id": turn.message_id, "user_id": turn.author_id, "text": turn.text},
        dedupe_key=f"message:{turn.message_id}",
    )


async def _prepared(
    ctx: WorkflowContext, claimed: messages.Claimed, prompt: Prompt, along: tuple[int, ...] = ()
) -> PreparedTurn:
    turn, thread = claimed.turn, claimed.thread
    media_here = ctx.runtime.settings.retrieval_chunks > 0 and claimed.media_nearby
    chat = await with_excerpts(ctx, prompt.messages, turn, thread) if media_here else prompt.messages
    return PreparedTurn(
        turn.message_id,
        turn.thread_id,
        thread,
        turn.author_id,
        chat,
        prompt.history_included,
        along=along,
        files=claimed.has_files,
    )


async def _prepare_at_once(ctx: WorkflowContext, message_id: int) -> PreparedTurn | Consumed | None:
    """CONVERSATION_STRATEGY=concurrent: the message's own turn, now, whatever else the thread is doing."""
    claimed = await messages.claim_message(ctx.runtime, message_id)
    if claimed is None:
        return None
    turn, prefs = claimed.turn, claimed.prefs

    async def history() -> Prompt:
        async with ctx.runtime.autocommit.connect() as conn:
            return await gather_context(conn, ctx.runtime.settings, turn, prefs)

    # The event (two statements) and the history (one) on connections of their own, at once: the history is only
    # wasted when a waiting run takes the message as its answer, which is rare.
    sent, prompt = await asyncio.gather(_announce(ctx, turn), history())
    if sent.consumed:
        # A run asked this user a question in this thread and takes this message as the answer.
        await messages.set_status(ctx.runtime, message_id, "completed")
        return Consumed()
    return await _prepared(ctx, claimed, prompt)


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


async def answer(ctx: WorkflowContext, turn: PreparedTurn) -> PostedReply:
    thread = turn.thread
    platform = ctx.platform(thread)
    stream = open_reply(platform, thread, ctx.key("reply"))
    chat = turn.messages
    settings = ctx.runtime.settings
    tools = (SCHEDULE_FOLLOWUP,) if settings.assistant_followups else ()
    calls: list[ToolCall] = []
    images = await turn_pictures(ctx, turn) if turn.files or turn.along else []
    # The usage is recorded once the reply is shown, off the path to the user's screen.
    async with metered(ctx, Payer.of(thread, turn.user_id), "reply") as usage:
        # aclosing: if posting fails mid-stream, the HTTP stream to the model is closed now, not at garbage
        # collection. The status line (Slack's assistant threads) is a courtesy: its round trip overlaps the model's.
        async with aclosing(
            ctx.deps.llm.stream_chat(
                chat,
                max_tokens=settings.max_reply_tokens,
                tools=tools,
                tool_calls=calls,
                usage=usage,
                images=images,
            )
        ) as deltas:
            await pump(until_stopped(ctx, deltas), stream, platform.show_working(thread, "is thinking…"))
        # The model's tool calls are acted on here and confirmed in the reply (no second model round trip).
        notes = [
            await schedule_from_tool(ctx, call, index, thread=thread, thread_id=turn.thread_id, user_id=turn.user_id)
            for index, call in enumerate(calls)
            if call.name == SCHEDULE_FOLLOWUP.name
        ]
        if notes:
            await stream.feed(("\n\n" if stream.text.strip() else "") + "\n".join(notes))
        if not stream.text.strip():
            raise PermanentUpstreamError(
                "llm", "empty reply", "The language model returned an empty answer. Try again."
            )
        posted = await stream.finish()
    return PostedReply(stream.text, posted)


async def until_stopped(ctx: WorkflowContext, deltas: AsyncIterator[str]) -> AsyncIterator[str]:
    """The model's deltas until the run is cancelled (interrupted by a newer message) or its lease is lost: the
    answer stops where it is instead of being written to its end by a run that no longer owns it."""
    async for delta in deltas:
        if ctx.lease_lost:
            raise RunAborted(f"run {ctx.run_id}: cancelled or lease lost while answering")
        yield delta


async def turn_pictures(ctx: WorkflowContext, turn: PreparedTurn) -> list[str]:
    """The pictures shared with the message (and those answered with it), downloaded for the model."""
    shared = [FileRef(**file) for file in await messages.messages_files(ctx.runtime, (*turn.along, turn.message_id))]
    found = pictures(shared)
    if not found:
        return []
    source = ctx.deps.files.get(turn.thread.platform)
    if source is None:
        raise InvalidInput("I can't read pictures shared on this platform.")
    return await data_urls(source, found, max_bytes=ctx.runtime.settings.max_image_bytes)
