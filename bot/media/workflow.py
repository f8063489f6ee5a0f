"""A message that shares files, as a durable workflow: for each file, store -> transcribe -> digest (a chain) ->
reply in the thread with the transcript attached -> embed for retrieval.

Every stage is a step, so a crash or a retry resumes at the stage it stopped in: a stored file is not downloaded
again, a transcript is not paid for twice, a chain step's answer is kept. One progress message per file is posted
first and edited as the stages pass (and every few seconds during long ones); a failure ends in that message,
saying what went wrong, and in a `failed` media row with the error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from pydantic import TypeAdapter

from bot.chains.runner import run_chain
from bot.chains.spec import Chain
from bot.events import FileRef
from bot.failures import tell_failure
from bot.intake import MEDIA_TURN
from bot.mail.delivery import deliver_result
from bot.media.filejob import FileJob, MediaTurn, media_failure_text, post_progress, tell_file_failed
from bot.media.stages import (
    attach_transcript,
    chain_scope,
    embed,
    keep_transcript,
    media_row,
    pick_chain,
    post_digest,
    save_digest,
    store_file,
    transcribe,
)
from bot.stores import messages
from bot.stores.media import mark_failed
from bot.threads import THREAD_MESSAGE
from bot.workflows.errors import StepFailed
from bot.workflows.events import send_event
from bot.workflows.registry import workflow
from bot.workflows.steps import WorkflowContext

log = structlog.get_logger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class MediaTurnInput:
    message_id: int


CONTEXT = TypeAdapter[MediaTurn | None](MediaTurn | None)  # None: the message is gone or was handled


@workflow(
    MEDIA_TURN,
    input=MediaTurnInput,
    description="Store, transcribe and digest the files a message shared; answer in its thread.",
)
async def media_turn(ctx: WorkflowContext, input: MediaTurnInput) -> dict[str, Any]:
    message_id = input.message_id
    try:
        turn = await ctx.step.run("context", lambda: prepare(ctx, message_id), result=CONTEXT)
    except StepFailed as exc:
        # Not even the message could be read: end it, saying so in its thread, as a chat turn would.
        failure = exc
        await ctx.step.run("tell-failure", lambda: tell_failure(ctx, message_id, failure), final=True)
        raise
    if turn is None:
        return {"skipped": "the message is gone or was handled already"}
    outcomes = [await digest_file(ctx, turn, index, file) for index, file in enumerate(turn.files)]
    ok = [outcome for outcome in outcomes if not outcome.get("error")]
    status = "completed" if ok else "failed"
    errors = "; ".join(outcome["error"] for outcome in outcomes if outcome.get("error")) or None
    await ctx.step.run("finish", lambda: messages.end_message(ctx.runtime, message_id, status, errors), final=True)
    return {"files": outcomes}


async def prepare(ctx: WorkflowContext, message_id: int) -> MediaTurn | None:
    claimed = await messages.claim_message(ctx.runtime, message_id)
    if claimed is None:
        return None
    turn, thread = claimed.turn, claimed.thread
    files = await messages.message_files(ctx.runtime, message_id)
    # A shared file is activity in the thread: a follow-up waiting for the thread to speak hears it. It carries
    # `sharer_id`, not `user_id`, so a question waiting for this user's answer does not take the file as one.
    await send_event(
        ctx.runtime,
        THREAD_MESSAGE,
        {"thread_id": turn.thread_id, "message_id": message_id, "sharer_id": turn.author_id, "text": turn.text},
        dedupe_key=f"message:{message_id}",
    )
    return MediaTurn(message_id, turn.thread_id, thread, turn.author_id, turn.text, [FileRef(**f) for f in files])


async def digest_file(ctx: WorkflowContext, turn: MediaTurn, index: int, file: FileRef) -> dict[str, Any]:
    """One file through every stage. A failure ends in the file's progress message and its media row, and the
    other files of the message go on; only what is needed for the digest can fail the file."""
    job = FileJob(ctx, turn, index, file)
    media_id = 0
    try:
        job.progress_id = await ctx.step.run(job.step("progress"), lambda: post_progress(job))
        # The row first, in a step of its own: a file refused while storing still has a row to mark failed.
        media_id = await ctx.step.run(job.step("record"), lambda: media_row(job))
        await ctx.step.run(job.step("store"), lambda: store_file(job, media_id))
        # Deepgram's answer is kept as the step's result before it is written out, so a database hiccup while
        # saving it does not pay for the transcription twice.
        heard = await ctx.step.run(job.step("transcribe"), lambda: transcribe(job, media_id), max_attempts=6)
        await ctx.step.run(job.step("keep"), lambda: keep_transcript(job, media_id, heard))
        chain = await ctx.step.run(job.step("chain"), lambda: pick_chain(job, media_id), result=Chain)
        scope = await chain_scope(job, media_id)
        result = await run_chain(
            ctx,
            chain,
            scope,
            thread=job.thread,
            thread_id=turn.thread_id,
            user_id=turn.user_id,
            prefix=job.step("chain"),
        )
        await ctx.step.run(job.step("reply"), lambda: post_digest(job, result))
        await ctx.step.run(job.step("save"), lambda: save_digest(ctx, media_id, result))
    except StepFailed as exc:
        failure = exc
        await _fail_file(job, media_id, failure)
        return {"media_id": media_id, "error": failure.error}
    except (ValueError, TypeError, KeyError, RuntimeError) as exc:
        # Our own bug or bad stored data outside any step: still end this file visibly, then let the others go on.
        log.exception("media file failed outside its steps", media_id=media_id)
        broken = StepFailed(job.step("digest"), f"{type(exc).__name__}: {exc}")
        await _fail_file(job, media_id, broken)
        return {"media_id": media_id, "error": broken.error}
    # Extras after the digest: neither fails the file (the user has the digest), each says why in the log.
    if chain.attach_transcript:
        await _extra(ctx, job.step("attach"), lambda: attach_transcript(job, media_id))
    chunks = 0
    if ctx.runtime.settings.retrieval_chunks > 0:
        chunks = await _extra(ctx, job.step("embed"), lambda: embed(job, media_id)) or 0
    if chain.deliver.email is not None and result.stopped_at is None:
        # Its own failures are said in the thread by itself; the digest stands either way.
        await deliver_result(
            ctx, chain, result.view, result.outputs, result.reply,
            thread=job.thread, thread_id=turn.thread_id, user_id=turn.user_id, prefix=job.step("deliver"),
        )  # fmt: skip
    return {"media_id": media_id, "chunks": chunks}


async def _extra(ctx: WorkflowContext, step_id: str, fn: Callable[[], Awaitable[T]]) -> T | None:
    try:
        return await ctx.step.run(step_id, fn, max_attempts=3)
    except StepFailed as exc:
        log.warning("media extra step failed", step=step_id, error=exc.error)
        return None


async def _fail_file(job: FileJob, media_id: int, failure: StepFailed) -> None:
    """The row first (it must say failed even if the thread cannot be told), then the notice, best effort."""
    ctx = job.ctx
    await ctx.step.run(job.step("mark-failed"), lambda: mark_media_failed(ctx, media_id, failure), final=True)
    try:
        await ctx.step.run(job.step("fail"), lambda: tell_file_failed(job, failure), final=True)
    except StepFailed as exc:
        log.warning("could not tell the thread a file failed", media_id=media_id, error=exc.error)


async def mark_media_failed(ctx: WorkflowContext, media_id: int, failed: StepFailed) -> None:
    log.warning("media failed", media_id=media_id, step=failed.step_id, detail=failed.error)
    if not media_id:
        return
    # A file whose transcript was kept stays usable (`/transcribe`, `/chain run`): only its digest failed.
    await mark_failed(ctx.runtime, media_id, media_failure_text(failed))
