"""The retrieval index's vector width: the pgvector column follows EMBEDDING_DIMENSIONS. An empty index is resized
when the setting changes; one holding vectors is resized only by `bot index reembed`, which also recomputes them
from the chunks' text, since vectors of one width (or one model) cannot be compared with another's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import structlog
from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.errors import ConfigurationError
from bot.media.models import MEDIA_CHUNKS
from bot.ports import LLM

log = structlog.get_logger(__name__)
REEMBED_BATCH = 64
c = MEDIA_CHUNKS.c
# For vector columns pg_attribute.atttypmod is the declared width (-1: none declared).
_COLUMN_WIDTH = text(
    "SELECT atttypmod FROM pg_attribute WHERE attrelid = 'media_chunks'::regclass AND attname = 'embedding' "
    "AND NOT attisdropped"
)


@dataclass(frozen=True, slots=True)
class IndexState:
    dimensions: int | None  # the column's width
    chunks: int
    missing: int  # chunks without a vector (cleared by a resize, not yet recomputed)


async def index_state(conn: AsyncConnection) -> IndexState:
    width = (await conn.execute(_COLUMN_WIDTH)).scalar_one()
    counts = (
        await conn.execute(select(func.count(), func.count().filter(c.embedding.is_(None))).select_from(MEDIA_CHUNKS))
    ).one()
    return IndexState(dimensions=width if width > 0 else None, chunks=counts[0], missing=counts[1])


async def resize(conn: AsyncConnection, dimensions: int) -> None:
    """The column to `dimensions` wide, every stored vector cleared in the same statement."""
    await conn.execute(
        text(f"ALTER TABLE media_chunks ALTER COLUMN embedding TYPE vector({int(dimensions)}) USING NULL")
    )


async def require_dimensions(engine: AsyncEngine, dimensions: int) -> None:
    """At a worker's start: the column matches EMBEDDING_DIMENSIONS, or is made to when it holds no vectors, or the
    start stops with the command that fixes it."""
    async with engine.begin() as conn:
        state = await index_state(conn)
        if state.dimensions == dimensions:
            return
        if state.chunks == state.missing:
            await resize(conn, dimensions)
            log.info("retrieval index resized", dimensions=dimensions, was=state.dimensions, chunks=state.chunks)
            return
    raise ConfigurationError(
        f"EMBEDDING_DIMENSIONS is {dimensions} but the retrieval index holds {state.dimensions}-dimension vectors "
        f"({state.chunks - state.missing} transcript chunks). Run `bot index reembed` to resize it and recompute "
        f"them with EMBEDDING_MODEL, or set EMBEDDING_DIMENSIONS={state.dimensions}."
    )


async def reembed(
    engine: AsyncEngine,
    llm: LLM,
    dimensions: int,
    *,
    everything: bool = False,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> int:
    """Resize the column to `dimensions` if it differs (clearing the vectors), clear them all if `everything` (a new
    EMBEDDING_MODEL of the same width), then embed every chunk without a vector. Safe to run again after a failure:
    what was done stays done. Returns how many chunks were embedded."""
    async with engine.begin() as conn:
        state = await index_state(conn)
        if state.dimensions != dimensions:
            await resize(conn, dimensions)
        elif everything:
            await conn.execute(update(MEDIA_CHUNKS).values(embedding=None))
        total = (await conn.execute(select(func.count()).where(c.embedding.is_(None)))).scalar_one()
    done, last_id = 0, 0
    store = update(MEDIA_CHUNKS).where(c.id == bindparam("b_id")).values(embedding=bindparam("b_embedding"))
    while True:
        async with engine.connect() as conn:
            batch = (
                await conn.execute(
                    select(c.id, c.text)
                    .where(c.embedding.is_(None), c.id > last_id)
                    .order_by(c.id)
                    .limit(REEMBED_BATCH)
                )
            ).all()
        if not batch:
            return done
        vectors = await llm.embed([row.text for row in batch])
        async with engine.begin() as conn:
            await conn.execute(
                store, [{"b_id": row.id, "b_embedding": vector} for row, vector in zip(batch, vectors, strict=True)]
            )
        done += len(batch)
        last_id = batch[-1].id
        progress(done, total)
