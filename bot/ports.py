"""Ports: what the core needs from the outside world. Adapters and clients implement them."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from bot.events import FileRef, PostedMessage, ThreadRef

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call: `parameters` is its JSON schema."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]


class ReplySink(Protocol):
    """A reply being streamed into a thread: text arrives in deltas, `finish` returns the posted message ids."""

    first_visible_at: float | None

    @property
    def text(self) -> str: ...

    async def feed(self, delta: str) -> None: ...

    async def finish(self, final_text: str | None = None) -> list[str]: ...


class ChatPlatform(Protocol):
    """Posting into a thread. Implementations must be safe to call from many jobs at once."""

    name: str
    max_message_chars: int
    min_edit_interval_s: float

    async def post_message(
        self, thread: ThreadRef, text: str, *, idempotency_key: str, recovering: bool = False
    ) -> PostedMessage:
        """Post `text` in `thread`. The same `idempotency_key` must never produce a second message: carry it where
        the platform keeps it (Slack message metadata, Discord `nonce` with `enforce_nonce`).

        `recovering` is true when an earlier attempt with this key may have posted before crashing; the platform
        then looks for that message first (and returns it with `existed=True`) where it can."""
        ...

    async def edit_message(self, thread: ThreadRef, message_id: str, text: str) -> None: ...

    async def show_working(self, thread: ThreadRef, status: str) -> None:
        """Tell the thread the bot is working (Slack assistant status, Discord typing); best effort, never raises
        for a platform that lacks it."""
        ...

    def open_reply(self, thread: ThreadRef, key_prefix: str) -> ReplySink | None:
        """A platform-native streaming reply (Slack's chat streaming API), or None to stream by post + edit.
        A native sink must be idempotent per `key_prefix` just like `post_message`."""
        ...


class FileSource(Protocol):
    """Downloads a file a user shared, from the platform's own hosts only, with the bot's credentials."""

    platform: str

    def download(self, file: FileRef, *, max_bytes: int) -> AsyncIterator[bytes]:
        """Stream the file's bytes. Raises `InvalidInput` when it is larger than `max_bytes` or its URL is not on
        the platform's file hosts, `TransientUpstreamError` for 429/5xx/timeouts, `PermanentUpstreamError`
        for other refusals."""
        ...


class LLM(Protocol):
    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        tools: Sequence[Tool] = (),
        tool_calls: list[ToolCall] | None = None,
    ) -> AsyncGenerator[str, None]:
        """Yield the reply in text deltas; calls the model made to `tools` are appended to `tool_calls` when the
        stream ends. Raises `TransientUpstreamError` or `PermanentUpstreamError`."""
        ...
