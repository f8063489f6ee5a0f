"""Media tables: a shared file's lifecycle, its transcript (utterances), its tags, and transcript chunks embedded
for retrieval (pgvector)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import BigInteger, CheckConstraint, Column, Float, ForeignKey, Index, Table, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from bot.models import _timestamp

MEDIA_STATUSES = ("pending", "stored", "transcribed", "done", "failed")


class Media(SQLModel, table=True):
    """One file a user shared (or a command named). `status` moves pending -> stored -> transcribed -> done, or to
    failed with `error`; a row is written before the download starts, so a failure always leaves a visible trace."""

    __tablename__ = "media"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'stored', 'transcribed', 'done', 'failed')", name="ck_media_status"),
        # One row per file of a message: a replayed step finds its row instead of adding a second.
        UniqueConstraint("message_id", "file_index", name="uq_media_message_file"),
        Index("ix_media_thread_id", "thread_id", "id"),
        Index("ix_media_owner", "platform", "workspace_id", "owner_id"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    message_id: int | None = Field(
        default=None, sa_column=Column(BigInteger, ForeignKey("messages.id", ondelete="SET NULL"), nullable=True)
    )
    file_index: int = 0
    thread_id: int = Field(sa_column=Column(ForeignKey("threads.id", ondelete="CASCADE"), nullable=False))
    platform: str = Field(max_length=32)
    workspace_id: str = Field(max_length=128)
    channel_id: str = Field(max_length=128)
    owner_id: str = Field(max_length=128)
    run_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    name: str = Field(max_length=512)
    platform_file_id: str = Field(default="", max_length=256)
    blob_key: str = Field(default="", max_length=1024)
    content_type: str = Field(default="", max_length=128)
    kind: str = Field(default="", max_length=16)
    size: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    sha256: str = Field(default="", max_length=64)
    duration_s: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    language: str = Field(default="", max_length=32)
    transcript: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    chain: str = Field(default="", max_length=128)
    chain_version: str = Field(default="", max_length=64)
    digest: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    status: str = Field(default="pending", max_length=16)
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()


class MediaUtterance(SQLModel, table=True):
    __tablename__ = "media_utterances"
    __table_args__ = (UniqueConstraint("media_id", "seq", name="uq_media_utterances_seq"),)

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    media_id: int = Field(sa_column=Column(BigInteger, ForeignKey("media.id", ondelete="CASCADE"), nullable=False))
    seq: int
    speaker: int = 0
    start_s: float = 0.0
    end_s: float = 0.0
    text: str = Field(sa_column=Column(Text, nullable=False))


class MediaTag(SQLModel, table=True):
    __tablename__ = "media_tags"
    __table_args__ = (Index("ix_media_tags_tag", "tag"),)

    media_id: int = Field(
        sa_column=Column(BigInteger, ForeignKey("media.id", ondelete="CASCADE"), primary_key=True, nullable=False)
    )
    tag: str = Field(primary_key=True, max_length=64)


class MediaChunk(SQLModel, table=True):
    """A stretch of a transcript with its embedding. `thread_id` and `channel_key` say where it may be retrieved:
    questions in the same thread first, then in the same channel."""

    __tablename__ = "media_chunks"
    __table_args__ = (
        UniqueConstraint("media_id", "seq", name="uq_media_chunks_seq"),
        Index("ix_media_chunks_thread", "thread_id"),
        Index("ix_media_chunks_channel", "channel_key"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    media_id: int = Field(sa_column=Column(BigInteger, ForeignKey("media.id", ondelete="CASCADE"), nullable=False))
    thread_id: int = Field(sa_column=Column(ForeignKey("threads.id", ondelete="CASCADE"), nullable=False))
    channel_key: str = Field(max_length=300)
    seq: int
    start_s: float = 0.0
    end_s: float = 0.0
    text: str = Field(sa_column=Column(Text, nullable=False))
    # No width here: the column's follows EMBEDDING_DIMENSIONS (bot.media.index), and pgvector would refuse others.
    embedding: list[float] | None = Field(sa_column=Column(Vector(), nullable=True))


MEDIA: Table = Media.__table__  # type: ignore[attr-defined]
UTTERANCES: Table = MediaUtterance.__table__  # type: ignore[attr-defined]
MEDIA_TAGS: Table = MediaTag.__table__  # type: ignore[attr-defined]
MEDIA_CHUNKS: Table = MediaChunk.__table__  # type: ignore[attr-defined]
