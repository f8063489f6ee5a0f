"""Platform-neutral events and values: adapters convert to these at the edge and nothing past it sees a payload."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ThreadRef:
    """Where a conversation lives. `thread_key` is the platform's thread id (Slack `thread_ts`, a Discord
    thread's channel id, a console thread name)."""

    platform: str
    workspace_id: str
    channel_id: str
    thread_key: str


@dataclass(frozen=True, slots=True)
class FileRef:
    """A file the user shared; downloaded later by the worker, never on the intake path."""

    file_id: str
    name: str
    mime_type: str
    size: int
    url: str


@dataclass(frozen=True, slots=True)
class Roles:
    """A user's roles where the platform has them (Discord: role ids and names), for `ALLOWED_ROLES`. `known` is
    false where they can't be read (a Discord user outside a server)."""

    names: frozenset[str] = frozenset()
    known: bool = True


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """A user's message to the bot. `event_id` is the platform's delivery id, the key for deduplication."""

    event_id: str
    thread: ThreadRef
    user_id: str
    text: str | bytes
    platform_message_id: str = ""
    user_name: str = ""
    files: tuple[FileRef, ...] = field(default=())
    roles: Roles | None = None  # None: the platform has no roles


@dataclass(frozen=True, slots=True)
class SlashCommand:
    event_id: str
    thread: ThreadRef
    user_id: str
    command: str
    text: str
    roles: Roles | None = None


@dataclass(frozen=True, slots=True)
class PostedMessage:
    """What a platform returns after a post: the id used to edit it later. `existed` is true when the
    idempotency key had been used already, so nothing new was posted and the old text may need an edit."""

    message_id: str
    existed: bool = False
