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

    async def upload_file(
        self,
        thread: ThreadRef,
        *,
        filename: str,
        content: bytes,
        title: str,
        comment: str = "",
        idempotency_key: str,
        recovering: bool = False,
    ) -> PostedMessage:
        """Attach a file (a transcript, a digest) to the thread, with `comment` as its message text. Idempotent
        per key like `post_message`; `recovering` asks the platform to look for an earlier upload first."""
        ...


class FileSource(Protocol):
    """Downloads a file a user shared, from the platform's own hosts only, with the bot's credentials."""

    platform: str

    def download(self, file: FileRef, *, max_bytes: int) -> AsyncGenerator[bytes, None]:
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
        model: str | None = None,
        json_schema: dict[str, Any] | None = None,
    ) -> AsyncGenerator[str, None]:
        """Yield the reply in text deltas; calls the model made to `tools` are appended to `tool_calls` when the
        stream ends. `model` overrides the configured model for this call (a chain step's own model);
        `json_schema` asks for JSON matching it (OpenAI's `response_format`). Raises `TransientUpstreamError` or
        `PermanentUpstreamError`."""
        ...

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One embedding vector per text, in order (`EMBEDDING_MODEL`, `EMBEDDING_DIMENSIONS` long)."""
        ...


@dataclass(frozen=True, slots=True)
class Utterance:
    """One speaker's stretch of a transcript; times in seconds from the start of the media."""

    speaker: int
    start_s: float
    end_s: float
    text: str


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    duration_s: float
    utterances: tuple[Utterance, ...]
    language: str = ""


class Transcriber(Protocol):
    """Speech to text (Deepgram, or the local stand-in on the embedded default)."""

    async def transcribe_url(self, url: str, *, content_type: str) -> Transcript:
        """Transcribe media the service can fetch itself (a presigned S3 URL). Raises `TransientUpstreamError`
        (retried by the step) or `PermanentUpstreamError` (the user is told)."""
        ...

    async def transcribe_stream(self, chunks: AsyncIterator[bytes], *, content_type: str) -> Transcript:
        """Transcribe media sent as a streamed request body (the blob store is not reachable from the service)."""
        ...


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """A file as the blob store keeps it: `content_type` comes from its magic bytes, not from the platform."""

    key: str
    size: int
    sha256: str
    content_type: str
    kind: Literal["audio", "video", "text"]


class BlobStore(Protocol):
    """Where media live: S3 (or MinIO, R2) in production, a local folder on the embedded default."""

    async def put_stream(self, key: str, chunks: AsyncIterator[bytes], *, filename: str, max_bytes: int) -> StoredBlob:
        """Store the stream under `key` without holding it in memory. Checks the content type by magic bytes and
        the size as bytes arrive: a wrong type or an over-size file raises `InvalidInput` and leaves nothing
        stored (an S3 multipart upload is aborted). Storage failures raise `TransientUpstreamError`."""
        ...

    def read(self, key: str, *, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        """Stream a stored blob's bytes."""
        ...

    async def presigned_url(self, key: str, *, expires_s: int) -> str | None:
        """A URL another service can GET the blob from, or None where there is none (the local folder)."""
        ...

    async def delete(self, key: str) -> None: ...
