"""Retrieval: transcript chunks embedded into pgvector when a file is digested, and the closest ones found again
when someone asks a question in the same thread (or channel), so the answer can draw on the recording."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Exists, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.events import ThreadRef
from bot.media.models import MEDIA, MEDIA_CHUNKS
from bot.media.transcripts import Chunk, clock
from bot.ports import LLM
from bot.runtime import Runtime

EMBED_BATCH = 64
c = MEDIA_CHUNKS.c


def channel_key(thread: ThreadRef) -> str:
    return f"{thread.platform}:{thread.workspace_id}:{thread.channel_id}"


async def embed_chunks(
    runtime: Runtime, llm: LLM, *, media_id: int, thread_id: int, thread: ThreadRef, chunks: list[Chunk]
) -> int:
    """Embed and store the chunks; chunks stored by an earlier attempt are skipped (unique per media and seq)."""
    async with runtime.autocommit.connect() as conn:
        done = set((await conn.execute(select(c.seq).where(c.media_id == media_id))).scalars())
    todo = [chunk for chunk in chunks if chunk.seq not in done]
    for start in range(0, len(todo), EMBED_BATCH):
        batch = todo[start : start + EMBED_BATCH]
        vectors = await llm.embed([chunk.text for chunk in batch])
        rows = [
            {
                "media_id": media_id,
                "thread_id": thread_id,
                "channel_key": channel_key(thread),
                "seq": chunk.seq,
                "start_s": chunk.start_s,
                "end_s": chunk.end_s,
                "text": chunk.text,
                "embedding": vector,
            }
            for chunk, vector in zip(batch, vectors, strict=True)
        ]
        async with runtime.autocommit.connect() as conn:
            await conn.execute(insert(MEDIA_CHUNKS).on_conflict_do_nothing(constraint="uq_media_chunks_seq"), rows)
    return len(chunks)


@dataclass(frozen=True, slots=True)
class Excerpt:
    media_name: str
    start_s: float
    end_s: float
    text: str
    distance: float


def channel_key_sql(
    platform: ColumnElement[str], workspace_id: ColumnElement[str], channel_id: ColumnElement[str]
) -> ColumnElement[str]:
    """`channel_key`, computed in SQL from a thread's columns."""
    return func.concat(platform, ":", workspace_id, ":", channel_id)


def has_chunks(thread_id: ColumnElement[int], channel: ColumnElement[str]) -> Exists:
    """Whether the thread or its channel has any transcript chunks. An index probe, cheap enough for every turn as
    a column of the turn's first statement, so turns in threads without files never pay for an embedding call."""
    return select(c.id).where((c.thread_id == thread_id) | (c.channel_key == channel)).limit(1).exists()


async def search(
    conn: AsyncConnection, vector: list[float], *, thread_id: int, thread: ThreadRef, limit: int
) -> list[Excerpt]:
    """The `limit` closest chunks: those from this thread's own files first, then the rest of the channel."""
    distance = c.embedding.cosine_distance(vector).label("distance")
    same_thread = (c.thread_id == thread_id).label("same_thread")
    rows = (
        await conn.execute(
            select(MEDIA.c.name, c.start_s, c.end_s, c.text, distance, same_thread)
            .join(MEDIA, MEDIA.c.id == c.media_id)
            .where((c.thread_id == thread_id) | (c.channel_key == channel_key(thread)), c.embedding.is_not(None))
            .order_by(same_thread.desc(), distance)
            .limit(limit)
        )
    ).all()
    return [Excerpt(row.name, row.start_s, row.end_s, row.text, float(row.distance)) for row in rows]


def excerpts_prompt(excerpts: list[Excerpt]) -> str:
    parts = ["Excerpts from recordings and transcripts shared in this conversation (cite the time when you use them):"]
    for excerpt in excerpts:
        parts.append(f"--- {excerpt.media_name} at {clock(excerpt.start_s)}\n{excerpt.text}")
    return "\n".join(parts)
