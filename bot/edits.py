"""A user edited or deleted a message the bot stored: keep the thread history the model sees in step with it.

Platform-neutral: adapters pass where the message lives and its platform message id.
"""

from __future__ import annotations

import structlog

from bot.errors import InvalidInput
from bot.guards import validate_text
from bot.runtime import Runtime
from bot.stores.messages import drop_user_message, edit_user_message

log = structlog.get_logger(__name__)


async def update_stored_text(
    runtime: Runtime, *, platform: str, workspace_id: str, channel_id: str, platform_message_id: str, text: str
) -> int:
    """Replace the stored text of the user's message; returns how many rows changed (0: not one of ours).
    An edit that would not pass intake (emptied, too long) leaves the stored copy as it was."""
    try:
        clean = validate_text(text, runtime.settings)
    except InvalidInput:
        return 0
    changed = await edit_user_message(
        runtime,
        platform=platform,
        workspace_id=workspace_id,
        channel_id=channel_id,
        platform_message_id=platform_message_id,
        text=clean,
    )
    log.info("stored message edited", platform_message_id=platform_message_id, rows=changed)
    return changed


async def drop_stored_message(
    runtime: Runtime, *, platform: str, workspace_id: str, channel_id: str, platform_message_id: str
) -> int:
    """Forget the user's deleted message. A turn being answered right now keeps its row (its reply refers to it);
    a pending one is dropped, and the worker then finds nothing to answer."""
    dropped = await drop_user_message(
        runtime,
        platform=platform,
        workspace_id=workspace_id,
        channel_id=channel_id,
        platform_message_id=platform_message_id,
    )
    log.info("stored message dropped", platform_message_id=platform_message_id, rows=dropped)
    return dropped
