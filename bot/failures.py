"""Telling a user that their turn failed: the words for each kind of failure (never the internal error, which is
for the logs), and the step that posts them and marks the message `failed`."""

from __future__ import annotations

import structlog

from bot.errors import ConfigurationError, PermanentUpstreamError, UpstreamError
from bot.events import ThreadRef
from bot.stores import messages
from bot.streaming import REPLACED
from bot.workflows.errors import StepFailed
from bot.workflows.steps import WorkflowContext

log = structlog.get_logger(__name__)

SERVICE_NAMES = {
    "llm": "the language model",
    "moderation": "the moderation check",
    "deepgram": "transcription (Deepgram)",
    "s3": "file storage",
    "smtp": "the mail server",
    "resend": "email (Resend)",
}


def failure_reason(failed: StepFailed) -> str:
    """Why a step failed, in words for the user."""
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


async def tell_failure(ctx: WorkflowContext, message_id: int, failed: StepFailed, along: tuple[int, ...] = ()) -> None:
    """Say in the thread that the turn failed, then mark the message `failed`. The post goes first: if it fails,
    this step is retried, so the user is told in the end instead of the row saying `failed` to nobody."""
    thread = await messages.thread_of(ctx.runtime, message_id)
    log.warning("turn failed", message_id=message_id, detail=failed.error)
    if thread is not None:
        try:
            await _tell(ctx, thread, failed)
        except (PermanentUpstreamError, ConfigurationError) as refused:
            # The platform will not take a post here at all (no permission, channel gone): nobody can be told,
            # so the log says it and the message is failed rather than retried for ever.
            log.warning("could not tell the user the turn failed", message_id=message_id, error=str(refused))
    await messages.set_status(ctx.runtime, message_id, "failed", error=failed.error[:2000], along=along)


async def _tell(ctx: WorkflowContext, thread: ThreadRef, failed: StepFailed) -> None:
    """Post the notice, or, where the failed step had already shown part of an answer, put the notice in its place:
    a cut-off answer left above the error would read as the bot's answer."""
    platform = ctx.platform(thread)
    notice = f"⚠️ {failure_text(failed)}"
    partial = await platform.posted_under(ctx.key(failed.step_id))
    if partial:
        try:
            await platform.edit_message(thread, partial[0], notice)
            for rest in partial[1:]:
                await platform.edit_message(thread, rest, REPLACED)
            return
        except UpstreamError as exc:  # the partial answer cannot be edited (a stream Slack still holds open)
            log.info("could not replace the cut-off answer; posting the notice below it", error=str(exc))
    await platform.post_message(thread, notice, idempotency_key=ctx.key("tell-failure"))
