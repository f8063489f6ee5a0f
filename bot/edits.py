"""A user edited or deleted a message the bot stored: keep the thread history the model sees in step with it.

Platform-neutral: adapters pass where the message lives and its platform message id.
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy import ScalarSelect, delete, func, select, update

from bot.errors import InvalidInput
from bot.guards import validate_text
from bot.models import MESSAGES, THREADS, WORKSPACES
from bot.runtime import Runtime
from bot.tokens import count_tokens

log = structlog.get_logger(__name__)
m, t, w = MESSAGES.c, THREADS.c, WORKSPACES.c


def _in_channel(platform: str, workspace_id: str, channel_id: str) -> ScalarSelect[Any]:
    return (
        select(t.id)
        .join(WORKSPACES, w.id == t.workspace_id)
        .where(
            t.platform == platform, w.platform == platform, w.external_id == workspace_id, t.channel_id == channel_id
        )
        .scalar_subquery()
    )


async def update_stored_text(
    runtime: Runtime, *, platform: str, workspace_id: str, channel_id: str, platform_message_id: str, text: str
) -> int:
    """Replace the stored text of the user's message; returns how many rows changed (0: not one of ours).
    An edit that would not pass intake (emptied, too long) leaves the stored copy as it was."""
    try:
        clean = validate_text(text, runtime.settings)
    except InvalidInput:
        return 0
    statement = (
        update(MESSAGES)
        .where(
            m.platform_message_id == platform_message_id,
            m.role == "user",
            m.thread_id.in_(_in_channel(platform, workspace_id, channel_id)),
        )
        .values(text=clean, token_count=count_tokens(clean), updated_at=func.now())
    )
    async with runtime.autocommit.connect() as conn:
        changed = (await conn.execute(statement)).rowcount
    log.info("stored message edited", platform_message_id=platform_message_id, rows=changed)
    return int(changed)


async def drop_stored_message(
    runtime: Runtime, *, platform: str, workspace_id: str, channel_id: str, platform_message_id: str
) -> int:
    """Forget the user's deleted message. A turn being answered right now keeps its row (its reply refers to it);
    a pending one is dropped, and the worker then finds nothing to answer."""
    statement = delete(MESSAGES).where(
        m.platform_message_id == platform_message_id,
        m.role == "user",
        m.status != "processing",
        m.thread_id.in_(_in_channel(platform, workspace_id, channel_id)),
    )
    async with runtime.autocommit.connect() as conn:
        dropped = (await conn.execute(statement)).rowcount
    log.info("stored message dropped", platform_message_id=platform_message_id, rows=dropped)
    return int(dropped)
