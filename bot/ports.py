"""Ports: what the core needs from the outside world. Adapters and clients implement them."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from bot.events import PostedMessage, ThreadRef

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str


class ChatPlatform(Protocol):
    """Posting into a thread. Implementations must be safe to call from many jobs at once."""

    name: str
    max_message_chars: int
    min_edit_interval_s: float

    async def post_message(self, thread: ThreadRef, text: str, *, idempotency_key: str) -> PostedMessage:
        """Post `text` in `thread`. The same `idempotency_key` must never produce a second message."""
        ...

    async def edit_message(self, thread: ThreadRef, message_id: str, text: str) -> None: ...


class LLM(Protocol):
    def stream_chat(self, messages: Sequence[ChatMessage], *, max_tokens: int) -> AsyncGenerator[str, None]:
        """Yield the reply in text deltas. Raises `TransientUpstreamError` or `PermanentUpstreamError`."""
        ...
