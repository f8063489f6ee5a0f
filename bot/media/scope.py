"""The scope chain templates render with (`input`, `transcript`, `thread`, `media`, `now`), read from Postgres."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.media.transcripts import transcript_scope
from bot.models import MESSAGES
from bot.ports import Transcript

THREAD_MESSAGES = 60


async def thread_scope(conn: AsyncConnection, thread_id: int, limit: int = THREAD_MESSAGES) -> list[dict[str, str]]:
    """The thread's newest finished messages, oldest first: what `thread` means in a chain template."""
    m = MESSAGES.c
    rows = (
        await conn.execute(
            select(m.role, m.author_id, m.text)
            .where(m.thread_id == thread_id, m.status.in_(("completed", "processing")))
            .order_by(m.id.desc())
            .limit(limit)
        )
    ).all()
    return [{"role": role, "user": author, "text": text} for role, author, text in reversed(rows)]


def media_scope(
    media: dict[str, Any] | None, transcript: Transcript | None, text: str, thread: list[dict[str, str]]
) -> dict[str, Any]:
    return {
        "input": text,
        "transcript": transcript_scope(transcript) if transcript is not None else None,
        "thread": thread,
        "media": None
        if media is None
        else {"name": media["name"], "kind": media["kind"], "duration": media["duration_s"] or 0.0},
        "now": datetime.now(UTC).isoformat(timespec="minutes"),
    }
