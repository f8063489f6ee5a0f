"""Speech to text with Deepgram (deepgram-sdk 7): the `Transcriber` port over Deepgram's pre-recorded API, also used
against the local stand-in, which the composition root picks when no key is set (see `jobs.stand_ins`)."""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import httpx
from deepgram import AsyncDeepgramClient, DeepgramClientEnvironment, ListenV1Response
from deepgram.core.api_error import ApiError
from deepgram.core.parse_error import ParsingError
from deepgram.listen.v1.media.types.media_transcribe_response import MediaTranscribeResponse

from bot.errors import BotError, PermanentUpstreamError, TransientUpstreamError, UpstreamError
from bot.ports import Transcript, Utterance

if TYPE_CHECKING:
    from bot.config import Settings

__all__ = [
    "DeepgramTranscriber",
    "transcriber_for",
    "transcript_from_response",
    "upstream_error",
]

SERVICE = "deepgram"
DEFAULT_MODEL = "nova-3"
# Deepgram answers only when the whole file is transcribed: hours of audio take minutes, so the read timeout is long.
DEFAULT_TIMEOUT_S = 600.0
CONNECT_TIMEOUT_S = 10.0
# The key the local stand-in expects (see jobs.stand_ins).
STAND_IN_KEY = "stand-in"
USER_DETAIL_CHARS = 300

NOT_CONFIGURED = "Transcription is not configured correctly; an operator has been told."
UNREADABLE_ANSWER = "The transcription service sent an answer the bot could not read; an operator has been told."
_OPERATOR_MESSAGES: dict[int, str] = {
    401: NOT_CONFIGURED,
    402: "Transcription is unavailable: the Deepgram account has run out of credit; an operator has been told.",
    403: "Transcription is not allowed for the configured Deepgram account; an operator has been told.",
    404: NOT_CONFIGURED,
}
_URL_RE = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)


def deepgram_environment(base_url: str) -> DeepgramClientEnvironment:
    """SDK 7 reads no base URL from the environment: every endpoint family is given here. Only `base` (REST) is
    used for pre-recorded transcription; the websocket ones follow it so a self-hosted URL stays consistent."""
    base = base_url.rstrip("/")
    # The SDK appends /v1/listen itself; people often paste the versioned URL.
    base = base.removesuffix("/v1")
    ws = "wss://" + base.removeprefix("https://") if base.startswith("https://") else base.replace("http://", "ws://")
    return DeepgramClientEnvironment(base=base, production=ws, agent=ws, agent_rest=base)


class DeepgramTranscriber:
    """`Transcriber` over Deepgram's pre-recorded API: `nova-3` with smart formatting, utterances and diarization.

    Owns an HTTP connection pool: close it with `aclose()` or use it as an async context manager.
    """

    def __init__(
        self,
        api_key: str,
        base_url: str,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        *,
        model: str = DEFAULT_MODEL,
        language: str = "",
        detect_language: bool = False,
    ) -> None:
        self.base_url = base_url
        self.model = model
        self.timeout_s = timeout_s
        self._language = language or None
        self._detect_language = detect_language or None
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(timeout_s, connect=min(CONNECT_TIMEOUT_S, timeout_s)))
        # max_retries=0: a streamed body cannot be sent twice (the SDK would resend an exhausted iterator), and the
        # workflow step already retries TransientUpstreamError with backoff.
        self._client = AsyncDeepgramClient(
            api_key=api_key, environment=deepgram_environment(base_url), httpx_client=self._http, max_retries=0
        )

    def __repr__(self) -> str:
        return f"DeepgramTranscriber(base_url={self.base_url!r}, model={self.model!r})"

    async def transcribe_url(self, url: str, *, content_type: str) -> Transcript:
        # Deepgram sniffs the format of what it downloads, so `content_type` has no use here.
        return await self._transcript(
            self._client.listen.v1.media.transcribe_url(
                url=url,
                model=self.model,
                smart_format=True,
                punctuate=True,
                utterances=True,
                diarize=True,
                language=self._language,
                detect_language=self._detect_language,
            )
        )

    async def transcribe_stream(self, chunks: AsyncIterator[bytes], *, content_type: str) -> Transcript:
        # The SDK hands an async iterator to httpx as the body, which sends it chunked as it is read: the file is
        # never held in memory. Its content-type header is fixed to octet-stream; ours overrides it.
        return await self._transcript(
            self._client.listen.v1.media.transcribe_file(
                request=chunks,
                model=self.model,
                smart_format=True,
                punctuate=True,
                utterances=True,
                diarize=True,
                language=self._language,
                detect_language=self._detect_language,
                request_options={"additional_headers": {"content-type": content_type or "application/octet-stream"}},
            )
        )

    async def _transcript(self, call: Awaitable[MediaTranscribeResponse]) -> Transcript:
        try:
            response = await call
        except BotError:
            raise  # from the chunks iterator (the blob store): already in our tree
        except ApiError as exc:
            raise upstream_error(exc.status_code, exc.headers, exc.body) from exc
        except ParsingError as exc:
            detail = f"HTTP {exc.status_code}: unparseable answer"
            raise PermanentUpstreamError(SERVICE, detail, UNREADABLE_ANSWER) from exc
        except httpx.TimeoutException as exc:
            detail = f"no answer within {self.timeout_s:g} s ({type(exc).__name__})"
            raise TransientUpstreamError(SERVICE, detail) from exc
        except httpx.TransportError as exc:
            raise TransientUpstreamError(SERVICE, f"connection failed: {type(exc).__name__}: {exc}") from exc
        return transcript_from_response(response)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


# -- errors ----------------------------------------------------------------------------------------------------


def upstream_error(status: int | None, headers: Mapping[str, str] | None, body: Any) -> UpstreamError:
    """Our error for a Deepgram error answer: 408, 429 and 5xx are retried, other refusals tell the user why."""
    code, message, request_id = _error_fields(body)
    detail = f"HTTP {status}" + (f" {code}" if code else "") + (f": {message}" if message else "")
    if request_id:
        detail += f" (request {request_id})"
    if status is None or status in (408, 429) or status >= 500:
        return TransientUpstreamError(SERVICE, detail, retry_after_s=retry_after_s(headers or {}))
    if status < 400:
        # A success status whose body is not Deepgram's JSON (a proxy's page): nothing about the user's file.
        return PermanentUpstreamError(SERVICE, detail, UNREADABLE_ANSWER)
    if status in _OPERATOR_MESSAGES:
        return PermanentUpstreamError(SERVICE, detail, _OPERATOR_MESSAGES[status])
    if status == 413:
        return PermanentUpstreamError(SERVICE, detail, "This file is too large for Deepgram to transcribe.")
    said = _for_user(message) or f"no reason given (HTTP {status})"
    if code == "REMOTE_CONTENT_ERROR":
        # Fetching our presigned URL failed, not reading the user's file: say so to whoever reads the thread.
        return PermanentUpstreamError(SERVICE, detail, f"Deepgram could not download this file from storage: {said}")
    return PermanentUpstreamError(SERVICE, detail, f"Deepgram could not read this file: {said}")


def _error_fields(body: Any) -> tuple[str, str, str]:
    """err_code, err_msg and request_id of an error body; Deepgram uses two shapes (err_* and category/message)."""
    if isinstance(body, Mapping):
        code = body.get("err_code") or body.get("category") or ""
        message = body.get("err_msg") or body.get("message") or ""
        details = body.get("details")
        if details and not body.get("err_msg"):
            message = f"{message} {details}".strip()
        return str(code), str(message), str(body.get("request_id") or "")
    if isinstance(body, str | bytes):
        text = body.decode(errors="replace") if isinstance(body, bytes) else body
        return "", " ".join(text.split())[:USER_DETAIL_CHARS], ""
    return "", "", ""


def _for_user(message: str) -> str:
    """An upstream message fit for a chat thread: no URLs (a presigned one is a credential), one line, short."""
    text = " ".join(_URL_RE.sub("<url>", message).split())
    if len(text) > USER_DETAIL_CHARS:
        text = text[: USER_DETAIL_CHARS - 1] + "…"
    return text


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Seconds from a Retry-After header (a number or an HTTP date), or None."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


# -- answers ---------------------------------------------------------------------------------------------------


def transcript_from_response(response: MediaTranscribeResponse) -> Transcript:
    """Our `Transcript` from Deepgram's answer: its utterances, or words grouped by speaker when there are none."""
    if not isinstance(response, ListenV1Response):
        # Only a callback request is answered with a bare request id; we never ask for one.
        raise PermanentUpstreamError(SERVICE, "answer without results", UNREADABLE_ANSWER)
    channels = response.results.channels
    channel = channels[0] if channels else None
    alternative = channel.alternatives[0] if channel is not None and channel.alternatives else None
    text = (alternative.transcript or "").strip() if alternative is not None else ""
    duration_s = float(response.metadata.duration)
    utterances = tuple(
        Utterance(
            speaker=u.speaker or 0,
            start_s=float(u.start or 0.0),
            end_s=float(u.end if u.end is not None else u.start or 0.0),
            text=(u.transcript or "").strip(),
        )
        for u in response.results.utterances or ()
        if (u.transcript or "").strip()
    )
    if not utterances and alternative is not None:
        utterances = _utterances_from_words(alternative.words or ())
    if not utterances and text:
        utterances = (Utterance(speaker=0, start_s=0.0, end_s=duration_s, text=text),)
    language = (channel.detected_language or "") if channel is not None else ""
    return Transcript(text=text, duration_s=duration_s, utterances=utterances, language=language)


def _utterances_from_words(words: Any) -> tuple[Utterance, ...]:
    """Consecutive words of one speaker as an utterance (for answers without `results.utterances`)."""
    out: list[Utterance] = []
    run: list[Any] = []

    def close_run() -> None:
        if run:
            text = " ".join(getattr(w, "punctuated_word", None) or w.word or "" for w in run).strip()
            start, end = float(run[0].start or 0.0), float(run[-1].end or run[-1].start or 0.0)
            out.append(Utterance(speaker=run[0].speaker or 0, start_s=start, end_s=end, text=text))
            run.clear()

    for word in words:
        if run and (word.speaker or 0) != (run[0].speaker or 0):
            close_run()
        run.append(word)
    close_run()
    return tuple(u for u in out if u.text)


# -- construction ----------------------------------------------------------------------------------------------


def transcriber_for(settings: Settings) -> DeepgramTranscriber | None:
    """Deepgram at DEEPGRAM_BASE_URL when DEEPGRAM_API_KEY is set; None means: no key, the caller picks a stand-in."""
    key = settings.deepgram_api_key.get_secret_value()
    if not key:
        return None
    return DeepgramTranscriber(key, settings.deepgram_base_url)
