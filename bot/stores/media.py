"""Media rows: one per shared file, from `pending` through `stored`, `transcribed` and `done` (or `failed`, with the
error the user was shown), with the chain that digested it, its digest and tags; and finding one again."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert

from bot.events import ThreadRef
from bot.media.models import MEDIA, MEDIA_TAGS
from bot.ports import StoredBlob
from bot.runtime import Runtime

x = MEDIA.c


async def create_media(
    runtime: Runtime,
    *,
    message_id: int,
    file_index: int,
    thread_id: int,
    thread: ThreadRef,
    owner_id: str,
    run_id: int,
    name: str,
    platform_file_id: str,
) -> int:
    """The row of a message's `file_index`-th file; a retried step finds the row it wrote before."""
    statement = (
        insert(MEDIA)
        .values(
            message_id=message_id,
            file_index=file_index,
            thread_id=thread_id,
            platform=thread.platform,
            workspace_id=thread.workspace_id,
            channel_id=thread.channel_id,
            owner_id=owner_id,
            run_id=run_id,
            name=name[:512],
            platform_file_id=platform_file_id[:256],
            blob_key="",
            content_type="",
            kind="",
            sha256="",
            language="",
            chain="",
            chain_version="",
            status="pending",
        )
        .on_conflict_do_update(constraint="uq_media_message_file", set_={"updated_at": func.now()})
        .returning(x.id)
    )
    async with runtime.autocommit.connect() as conn:
        return int((await conn.execute(statement)).scalar_one())


async def mark_stored(runtime: Runtime, media_id: int, stored: StoredBlob) -> None:
    async with runtime.autocommit.connect() as conn:
        await conn.execute(
            update(MEDIA)
            .where(x.id == media_id)
            .values(
                blob_key=stored.key,
                content_type=stored.content_type,
                kind=stored.kind,
                size=stored.size,
                sha256=stored.sha256,
                status="stored",
                updated_at=func.now(),
            )
        )


async def set_chain(runtime: Runtime, media_id: int, name: str, version: str) -> None:
    async with runtime.autocommit.connect() as conn:
        await conn.execute(update(MEDIA).where(x.id == media_id).values(chain=name, chain_version=version))


async def save_digest(runtime: Runtime, media_id: int, outputs: dict[str, Any], tags: list[str]) -> None:
    async with runtime.engine.begin() as conn:
        await conn.execute(
            update(MEDIA)
            .where(x.id == media_id)
            .values(digest=outputs, status="done", error=None, updated_at=func.now())
        )
        if tags:
            await conn.execute(
                insert(MEDIA_TAGS).on_conflict_do_nothing(), [{"media_id": media_id, "tag": tag} for tag in tags]
            )


async def mark_failed(runtime: Runtime, media_id: int, error: str) -> None:
    async with runtime.autocommit.connect() as conn:
        await conn.execute(
            update(MEDIA).where(x.id == media_id).values(status="failed", error=error[:2000], updated_at=func.now())
        )


async def load_media(runtime: Runtime, media_id: int) -> dict[str, Any]:
    """The media row as a dict (it exists: callers hold its id from an earlier step)."""
    async with runtime.autocommit.connect() as conn:
        return dict((await conn.execute(select(MEDIA).where(x.id == media_id))).mappings().one())


async def latest_media(runtime: Runtime, thread_id: int, thread: ThreadRef) -> dict[str, Any] | None:
    """The file shared most recently in this thread, else in its channel."""
    in_channel = (
        (x.platform == thread.platform) & (x.workspace_id == thread.workspace_id) & (x.channel_id == thread.channel_id)
    )
    async with runtime.autocommit.connect() as conn:
        for where in (x.thread_id == thread_id, in_channel):
            row = (await conn.execute(select(MEDIA).where(where).order_by(x.id.desc()).limit(1))).mappings().first()
            if row is not None:
                return dict(row)
    return None
