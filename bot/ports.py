"""Ports: what the core needs from the outside world. Adapters and clients implement them."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from bot.errors import InvalidInput
from bot.events import FileRef, PostedMessage, ThreadRef
from bot.text import split_text

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


@dataclass(slots=True)
class Usage:
    """What one model call took, filled in by `LLM.stream_chat` when its stream ends: the tokens the endpoint
    reported (`reported`), or an estimate from the text where it reports none."""

    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reported: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class ReplySink(Protocol):
    """A reply being streamed into a thread: text arrives in deltas, `finish` returns the posted message ids."""

    first_visible_at: float | None

    @property
    def text(self) -> str: ...

    async def feed(self, delta: str) -> None: ...

    async def finish(self, final_text: str | None = None) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class FileUpload:
    """A file to attach to a thread (a transcript, a digest): `comment` is the text of the message carrying it."""

    filename: str
    content: bytes
    title: str = ""
    comment: str = ""


Send = Callable[[bool], Awaitable[PostedMessage]]


class PostLedger(Protocol):
    """The one record of keyed posts: the Postgres outbox (`bot.workflows.outbox`). A platform uses it for posts it
    makes on its own inside the one it was asked for (each part of a native stream) and for what it must note
    before its last call of a post (Slack's file id before a share), so nothing about a post lives only in Redis."""

    async def once(self, key: str, send: Send) -> PostedMessage:
        """`send(recovering)` under `key`, unless a post under it is recorded as sent: then that message, with
        `existed=True`. `recovering` is true when an earlier attempt may have posted before crashing."""
        ...

    async def note(self, key: str, value: str) -> None:
        """Keep `value` with the post under `key` (which `once` has claimed) until it is sent."""
        ...

    async def noted(self, key: str) -> str | None:
        """What an earlier attempt noted under `key`."""
        ...


class ChatPlatform:
    """Posting into a thread; every adapter's outbound side subclasses it, and the outbox wraps one. What only some
    platforms can do has a default here that does without (httpx's `AsyncBaseTransport` is the model), so the
    core calls every method on every platform. Implementations must be safe to call from many jobs at once."""

    name: str = ""
    max_message_chars: int = 4000
    min_edit_interval_s: float = 1.0

    async def post_message(
        self, thread: ThreadRef, text: str, *, idempotency_key: str, recovering: bool = False
    ) -> PostedMessage:
        """Post `text` in `thread`, carrying `idempotency_key` where the platform keeps one (Slack message
        metadata, Discord `nonce` with `enforce_nonce`, the console's stream entry). The outbox calls this at most
        once per key unless an attempt crashed around the call: then `recovering` is true and the platform looks
        for that message first where it can (returning it with `existed=True`). Raises `MessageTooLong` when the
        platform refuses the text's length (the outbox then posts it in parts)."""
        raise NotImplementedError

    async def edit_message(self, thread: ThreadRef, message_id: str, text: str) -> None:
        """Show `text` in the message instead; raises `MessageTooLong` like `post_message`."""
        raise NotImplementedError

    async def upload_file(
        self,
        thread: ThreadRef,
        upload: FileUpload,
        *,
        idempotency_key: str,
        recovering: bool = False,
        ledger: PostLedger | None = None,
    ) -> PostedMessage:
        """Attach a file to the thread, keyed and recovered like `post_message`; `ledger` keeps what the platform
        must note before the upload is complete. Raises `InvalidInput` for a file the platform would refuse (the
        caller says so in the thread instead)."""
        raise InvalidInput(f"Files can't be attached on {self.name or 'this platform'}.")

    async def show_working(self, thread: ThreadRef, status: str) -> None:
        """Tell the thread the bot is working (Slack assistant status, Discord typing); best effort, never raises.
        A platform without an indicator shows nothing: the streamed text is the progress."""
        return None

    def open_reply(self, thread: ThreadRef, key_prefix: str, ledger: PostLedger | None = None) -> ReplySink | None:
        """A platform-native streaming reply (Slack's chat streaming API), or None to stream by post + edit. Each
        message a native sink starts goes through `ledger.once` under `{key_prefix}:{part}`, so without a ledger
        (a platform used bare, outside the outbox) there is no native stream."""
        return None

    def split_text(self, text: str, limit: int) -> list[str]:
        """How this platform cuts a text too long for one message (Discord keeps code fences whole)."""
        return split_text(text, limit)

    async def posted_beyond(self, key_prefix: str, count: int) -> list[str]:
        """Messages an earlier attempt posted under `{key_prefix}:{n}` for n >= count. Only the outbox knows; a
        bare platform keeps no record."""
        return []


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
        usage: Usage | None = None,
        images: Sequence[str] = (),
    ) -> AsyncGenerator[str, None]:
        """Yield the reply in text deltas; calls the model made to `tools` are appended to `tool_calls` when the
        stream ends, and `usage` is filled in then. `images` (data: URLs) go with the last message, for the model
        to look at. `model` overrides the configured model for this call (a chain
        step's own model); `json_schema` asks for JSON matching it (OpenAI's `response_format`). Raises
        `TransientUpstreamError` or `PermanentUpstreamError`."""
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


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    """One email to one recipient. `message_id` and `idempotency_key` come from the run, step and recipient, so
    every attempt at the same delivery sends the same message under the same key."""

    sender: str
    to: str
    subject: str
    text: str
    html: str
    message_id: str  # "<...@domain>", the Message-ID header
    idempotency_key: str


class Mailer(Protocol):
    """Sends email: SMTP (a real server, or the local sink on the embedded default) or Resend's HTTP API."""

    name: str
    # Whether sending the same `idempotency_key` again is safe (Resend keeps keys for a day). SMTP has no such key:
    # an attempt that may have sent is not repeated.
    dedupes: bool

    async def send(self, email: OutgoingEmail) -> str:
        """Send it and return the service's id for it. Raises `TransientUpstreamError` (nothing was accepted; retried),
        `MailMaybeSent` (the connection broke while the message was being handed over), or `PermanentUpstreamError`
        (refused: `user_message` says why)."""
        ...
