"""Intake: the one door every platform's messages go through.

guards (text -> access -> files -> dedupe -> rate, see `bot.guards`) -> persist (pending) -> enqueue. It answers
in milliseconds and never calls an LLM. Rejections raise `UserFacingError` subclasses whose text the adapter shows
the user; nothing is written before every guard has passed, and the message row, its thread and its workspace are
written in one statement.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import structlog

from bot.events import IncomingMessage
from bot.guards import MESSAGE, Admitted, dedupe_key, message_request
from bot.media.accept import is_image
from bot.runtime import Runtime
from bot.stores.intake import NewMessage, StoredMessage, persist_message
from bot.tokens import count_tokens
from bot.trace import mark
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


async def admit(runtime: Runtime, event: IncomingMessage) -> Admitted:
    """Every guard a message goes through, without writing anything: for a door that must know the message will be
    taken before its own side effect (Discord opens a thread for it), then hands the result to `accept`."""
    return await MESSAGE.admit(runtime, message_request(event))


async def accept(runtime: Runtime, event: IncomingMessage, admitted: Admitted | None = None) -> Accepted:
    """Accept a user's message for an answer, or raise a `UserFacingError` saying why not. `admitted`: the
    guards already passed (by `admit`) for this event, which are then not run again."""
    bound = log.bind(event_id=event.event_id, platform=event.thread.platform, user=event.user_id)
    if admitted is None:
        # The insert below finds a duplicate delivery itself: no lookup before it on the way to the ack.
        admitted = await MESSAGE.admit(runtime, message_request(event), dedupe_at_write=True)
    if admitted.duplicate is not None:
        await _requeue_if_pending(runtime, admitted.duplicate)
        bound.info("intake duplicate delivery", message_id=admitted.duplicate.message_id)
        held = admitted.duplicate
        return Accepted(held.message_id, held.thread_id, held.run_id, duplicate=True)

    where = event.thread
    stored = await persist_message(
        runtime,
        NewMessage(
            platform=where.platform,
            workspace_id=where.workspace_id,
            channel_id=where.channel_id,
            thread_key=where.thread_key,
            user_id=event.user_id,
            text=admitted.text,
            token_count=count_tokens(admitted.text, runtime.settings.openai_model),
            dedupe_key=dedupe_key(event),
            platform_message_id=event.platform_message_id or None,
            files=[asdict(file) for file in event.files] or None,
            # Pictures alone go with the question to the model; any other file goes through the media flow.
            workflow=MEDIA_TURN if any(not is_image(file) for file in event.files) else CHAT_TURN,
        ),
    )
    accepted = Accepted(stored.message_id, stored.thread_id, stored.run_id, duplicate=stored.duplicate)
    if stored.held is not None:
        if admitted.rate is not None:
            await admitted.rate.refund()  # a platform's retry costs the user no message of their minute
        await _requeue_if_pending(runtime, stored.held)
        bound.info("intake duplicate delivery", message_id=accepted.message_id)
        return accepted
    mark("persisted", accepted.run_id)
    await enqueue_run(runtime, accepted.run_id, 0)
    mark("enqueued", accepted.run_id)
    bound.info("intake accepted", message_id=accepted.message_id, run_id=accepted.run_id)
    return accepted


async def _requeue_if_pending(runtime: Runtime, message: StoredMessage) -> None:
    # A crash between persist and enqueue leaves a pending run with no job; the retry delivery repairs it
    # (arq ignores the job id if the job still exists).
    if message.run_status == "pending":
        await enqueue_run(runtime, message.run_id, message.wake_seq)
