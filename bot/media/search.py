"""Searching media by tag (the digest's) and by words in the name or transcript, newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.media.models import MEDIA, MEDIA_TAGS


@dataclass(frozen=True, slots=True)
class Found:
    id: int
    name: str
    platform: str
    channel_id: str
    owner_id: str
    status: str
    duration_s: float | None
    tags: list[str]
    created_at: datetime
    error: str | None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def search_media(
    conn: AsyncConnection, query: str = "", *, tags: list[str] | None = None, limit: int = 20
) -> list[Found]:
    """Media matching every word of `query` (in a tag, the name or the transcript) and carrying every tag in
    `tags`. Both empty: the newest media."""
    x, t = MEDIA.c, MEDIA_TAGS.c
    tag_list = func.array(select(t.tag).where(t.media_id == x.id).order_by(t.tag).scalar_subquery()).label("tags")
    statement = select(
        x.id, x.name, x.platform, x.channel_id, x.owner_id, x.status, x.duration_s, tag_list, x.created_at, x.error
    )
    for word in query.lower().split():
        pattern = f"%{_escape_like(word)}%"
        has_tag = select(t.media_id).where(t.media_id == x.id, t.tag.like(pattern, escape="\\")).exists()
        statement = statement.where(
            or_(has_tag, x.name.ilike(pattern, escape="\\"), x.transcript.ilike(pattern, escape="\\"))
        )
    for tag in tags or []:
        statement = statement.where(
            select(t.media_id).where(t.media_id == x.id, t.tag == tag.strip().lstrip("#").lower()).exists()
        )
    rows = (await conn.execute(statement.order_by(x.id.desc()).limit(limit))).all()
    return [
        Found(
            row.id,
            row.name,
            row.platform,
            row.channel_id,
            row.owner_id,
            row.status,
            row.duration_s,
            list(row.tags or []),
            row.created_at,
            row.error,
        )
        for row in rows
    ]
