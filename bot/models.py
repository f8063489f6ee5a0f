"""Tables (sqlmodel). Postgres is the source of truth; Redis only carries wake-ups."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

MESSAGE_STATUSES = ("pending", "processing", "completed", "failed")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _timestamp(**kwargs: Any) -> Any:
    return Field(
        default_factory=utcnow,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now(), **kwargs),
    )


class Workspace(SQLModel, table=True):
    __tablename__ = "workspaces"
    __table_args__ = (UniqueConstraint("platform", "external_id", name="uq_workspaces_platform_external"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=32)
    external_id: str = Field(max_length=128)
    name: str = Field(default="", max_length=256)
    created_at: datetime = _timestamp()


class Thread(SQLModel, table=True):
    __tablename__ = "threads"
    __table_args__ = (
        UniqueConstraint("platform", "workspace_id", "channel_id", "thread_key", name="uq_threads_location"),
    )

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=32)
    workspace_id: int = Field(sa_column=Column(ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False))
    channel_id: str = Field(max_length=128)
    thread_key: str = Field(max_length=128)
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()


class Message(SQLModel, table=True):
    """One message of a thread, the user's or the bot's. A user's message carries the turn's status."""

    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'processing', 'completed', 'failed')", name="ck_messages_status"),
        CheckConstraint("role IN ('user', 'assistant')", name="ck_messages_role"),
        # "Last N messages of a thread" walks this index backwards, so its cost does not grow with the thread.
        Index("ix_messages_thread_id_id", "thread_id", "id"),
        Index("ix_messages_pending", "status", "updated_at", postgresql_where="status IN ('pending', 'processing')"),
        # A thread's unanswered messages, read while deciding whose turn it is (bot.thread_turns).
        Index(
            "ix_messages_thread_open",
            "thread_id",
            "id",
            postgresql_where="role = 'user' AND status IN ('pending', 'processing')",
        ),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    thread_id: int = Field(sa_column=Column(ForeignKey("threads.id", ondelete="CASCADE"), nullable=False))
    role: str = Field(max_length=16)
    author_id: str = Field(default="", max_length=128)
    text: str = Field(sa_column=Column(Text, nullable=False))
    token_count: int = 0
    status: str = Field(default="pending", max_length=16)
    # The platform's delivery id, namespaced by platform and workspace: a second delivery of the same event
    # hits this unique key and is dropped.
    dedupe_key: str | None = Field(default=None, max_length=300, unique=True)
    # The workflow run answering this message (bot.workflows); a user's message starts exactly one.
    run_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True, index=True))
    # The run whose turn took this message (its own, or a later message's that answers a burst at once).
    turn_run_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    platform_message_id: str | None = Field(default=None, max_length=128)
    reply_to_id: int | None = Field(
        default=None, sa_column=Column(BigInteger, ForeignKey("messages.id", ondelete="SET NULL"), unique=True)
    )
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    attempts: int = 0
    # Files shared with the message (bot.events.FileRef as JSON), kept at intake so none is lost before the
    # media run has stored them.
    files: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()


class UserPreference(SQLModel, table=True):
    """What a user told the bot about themselves; it shapes the system prompt."""

    __tablename__ = "user_preferences"
    __table_args__ = (UniqueConstraint("platform", "workspace_id", "user_id", name="uq_user_preferences_user"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=32)
    workspace_id: str = Field(max_length=128)
    user_id: str = Field(max_length=128)
    display_name: str = Field(default="", max_length=128)
    timezone: str = Field(default="UTC", max_length=64)
    language: str = Field(default="", max_length=32)
    instructions: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    # Where a chain's `deliver: email` with `to: {prefs: true}` sends this user's copy.
    email: str = Field(default="", sa_column=Column(String(254), nullable=False, server_default=""))
    updated_at: datetime = _timestamp()


# Core tables, for the hot path: Core statements skip the ORM's per-row bookkeeping.
WORKSPACES: Table = Workspace.__table__  # type: ignore[attr-defined]
THREADS: Table = Thread.__table__  # type: ignore[attr-defined]
MESSAGES: Table = Message.__table__  # type: ignore[attr-defined]
USER_PREFERENCES: Table = UserPreference.__table__  # type: ignore[attr-defined]


class SlackInstallation(SQLModel, table=True):
    """A workspace (or Enterprise org) that installed the Slack app through OAuth, with its bot token.

    Written and read only by the Slack adapter's installation store; the core never looks at it. `enterprise_id`
    and `team_id` are "" rather than NULL when absent, so the pair can be a plain unique key.
    """

    __tablename__ = "slack_installations"
    __table_args__ = (UniqueConstraint("enterprise_id", "team_id", name="uq_slack_installations_org_team"),)

    id: int | None = Field(default=None, primary_key=True)
    enterprise_id: str = Field(default="", max_length=32)
    team_id: str = Field(default="", max_length=32)
    is_enterprise_install: bool = False
    app_id: str = Field(default="", max_length=32)
    team_name: str = Field(default="", max_length=256)
    bot_token: str = Field(sa_column=Column(Text, nullable=False))
    bot_id: str = Field(default="", max_length=32)
    bot_user_id: str = Field(default="", max_length=32)
    bot_scopes: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    installer_user_id: str = Field(default="", max_length=32)
    installed_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()


SLACK_INSTALLATIONS: Table = SlackInstallation.__table__  # type: ignore[attr-defined]
