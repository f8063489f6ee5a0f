"""Telling a user that their turn failed: the words for each kind of failure (never the internal error, which is
for the logs), and the step that posts them and marks the message `failed`."""

from __future__ import annotations

import structlog

from bot.errors import ConfigurationError, PermanentUpstreamError
from bot.stores import messages
from bot.workflows.errors import StepFailed
from bot.workflows.steps import WorkflowContext

log = structlog.get_logger(__name__)

SERVICE_NAMES = {"llm": "the language model", "deepgram": "transcription (Deepgram)", "s3": "file storage"}


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


async def tell_failure(ctx: WorkflowContext, message_id: int, failed: StepFailed) -> None:
    """Say in the thread that the turn failed, then mark the message `failed`. The post goes first: if it fails,
    this step is retried, so the user is told in the end instead of the row saying `failed` to nobody."""
    thread = await messages.thread_of(ctx.runtime, message_id)
    log.warning("turn failed", message_id=message_id, detail=failed.error)
    if thread is not None:
        try:
            await ctx.platform(thread).post_message(
                thread, f"⚠️ {failure_text(failed)}", idempotency_key=ctx.key("tell-failure")
            )
        except (PermanentUpstreamError, ConfigurationError) as refused:
            # The platform will not take a post here at all (no permission, channel gone): nobody can be told,
            # so the log says it and the message is failed rather than retried for ever.
            log.warning("could not tell the user the turn failed", message_id=message_id, error=str(refused))
    await messages.set_status(ctx.runtime, message_id, "failed", error=failed.error[:2000])
