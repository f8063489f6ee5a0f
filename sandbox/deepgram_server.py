"""Local Deepgram-compatible HTTP server: the offline stand-in for pre-recorded transcription (demo and tests).

Speaks `POST /v1/listen` (a JSON `{"url": ...}` body it fetches itself, or raw media streamed in the body) closely
enough for deepgram-sdk 7, and is scriptable: transcripts, failures and latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import signal
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from sandbox.media_probe import CorruptMedia, MediaProbe
from sandbox.serving import LocalServer

__all__ = ["Failure", "ListenOptions", "RecordedRequest", "Said", "StandInDeepgram", "listen_response"]

CHUNK_BYTES = 64 * 1024
CONFIDENCE = 0.99
# Pace of scripted speech: each word takes WORD_SECONDS (SPOKEN_FRACTION of it voiced), utterances are
# PAUSE_SECONDS apart; all of it is squeezed to fit when the media is shorter.
WORD_SECONDS = 0.4
SPOKEN_FRACTION = 0.8
PAUSE_SECONDS = 0.6
DEFAULT_MODEL = "base"
_BOOL_PARAMS = ("punctuate", "smart_format", "utterances", "diarize", "detect_language", "multichannel", "paragraphs")
_CORRUPT = "Bad Request: failed to process audio: corrupt or unsupported data"
_BAD_JSON = "Content-type was application/json, but we could not process the JSON payload."
_REMOTE = "REMOTE_CONTENT_ERROR"

# Deepgram's err_code and err_msg for each status it answers with.
_ERRORS: dict[int, tuple[str, str]] = {
    400: ("Bad Request", _CORRUPT),
    401: ("INVALID_AUTH", "Invalid credentials."),
    402: ("ASR_PAYMENT_REQUIRED", "Project does not have enough credits for an ASR request."),
    403: ("INSUFFICIENT_PERMISSIONS", "Project does not have access to the requested model."),
    404: ("NOT_FOUND", "Not found."),
    408: ("REQUEST_TIMEOUT", "The request timed out."),
    413: ("PAYLOAD_TOO_LARGE", "Payload is too large."),
    429: ("TOO_MANY_REQUESTS", "Too many requests. Please try again later."),
    500: ("INTERNAL_SERVER_ERROR", "Internal server error."),
    502: ("BAD_GATEWAY", "Bad gateway."),
    503: ("SERVICE_UNAVAILABLE", "Service unavailable. Please try again later."),
    504: ("GATEWAY_TIMEOUT", "Gateway timeout."),
}


@dataclass(frozen=True, slots=True)
class Said:
    """One utterance of a scripted transcript: who says what."""

    speaker: int
    text: str


@dataclass(frozen=True, slots=True)
class Failure:
    """How one scripted failure answers: `retry_after` becomes a Retry-After header."""

    status: int
    retry_after: float | None = None
    err_msg: str | None = None


@dataclass
class RecordedRequest:
    """What a /v1/listen request sent (the Authorization header left out) and how it was answered."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    at: float
    content_type: str = ""
    url: str | None = None
    body_bytes: int = 0
    media_bytes: int = 0
    sha256: str = ""
    duration_s: float | None = None
    status: int | None = None
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class ListenOptions:
    """The query parameters that change the shape of the answer."""

    model: str = DEFAULT_MODEL
    language: str = ""
    punctuate: bool = False
    smart_format: bool = False
    utterances: bool = False
    diarize: bool = False
    detect_language: bool = False

    @property
    def punctuated(self) -> bool:
        return self.punctuate or self.smart_format


class ListenError(Exception):
    """A request the server refuses with a Deepgram-shaped error body."""

    def __init__(
        self, status: int, err_msg: str | None = None, *, err_code: str | None = None, retry_after: float | None = None
    ) -> None:
        default_code, default_msg = _ERRORS.get(status, ("ERROR", f"HTTP {status}"))
        super().__init__(err_msg or default_msg)
        self.status = status
        self.err_code = err_code or default_code
        self.err_msg = err_msg or default_msg
        self.retry_after = retry_after


def error_response(exc: ListenError, request_id: str) -> web.Response:
    body = {"err_code": exc.err_code, "err_msg": exc.err_msg, "request_id": request_id}
    headers = {"dg-request-id": request_id}
    if exc.retry_after is not None:
        headers["Retry-After"] = f"{exc.retry_after:g}"
    return web.json_response(body, status=exc.status, headers=headers)


def listen_options(query: Any) -> ListenOptions:
    """Parse the query string like Deepgram: booleans must say true or false."""
    flags: dict[str, bool] = {}
    for name in _BOOL_PARAMS:
        value = query.get(name)
        if value is None:
            continue
        if value.lower() not in ("true", "false"):
            raise ListenError(400, f"Invalid query string. Failed to parse parameter `{name}`: expected a boolean.")
        flags[name] = value.lower() == "true"
    return ListenOptions(
        model=query.get("model") or DEFAULT_MODEL,
        language=query.get("language", ""),
        punctuate=flags.get("punctuate", False),
        smart_format=flags.get("smart_format", False),
        utterances=flags.get("utterances", False),
        # diarize_model alone turns diarization on, as it does for Deepgram.
        diarize=flags.get("diarize", False) or bool(query.get("diarize_model")),
        detect_language=flags.get("detect_language", False),
    )


def stand_in_said(duration_s: float, exact: bool, size: int) -> list[Said]:
    """The honest transcript used when nothing is scripted; empty for media with no length at all."""
    if duration_s <= 0:
        return []
    seconds = f"{duration_s:.2f} seconds" if exact else f"an estimated {duration_s:.1f} seconds"
    return [
        Said(0, "[stand-in transcription] This is not a real transcript."),
        Said(1, f"It stands in for {seconds} of audio, {size} bytes received."),
        Said(0, "No speech recognition ran on this media."),
    ]


@dataclass
class _Word:
    word: str
    punctuated: str
    start: float
    end: float
    speaker: int


def _timed_words(said: Sequence[Said], duration_s: float) -> list[list[_Word]]:
    """Words of each utterance with start and end times, at a natural pace squeezed into the media's length."""
    tokens = [[(t.strip(".,;:!?\"'()[]{}").lower(), t) for t in s.text.split()] for s in said]
    tokens = [[(w, p) for w, p in ts if w] for ts in tokens]
    spoken = [(s, ts) for s, ts in zip(said, tokens, strict=True) if ts]
    natural = sum(len(ts) for _, ts in spoken) * WORD_SECONDS + PAUSE_SECONDS * max(0, len(spoken) - 1)
    scale = min(1.0, duration_s / natural) if natural > 0 else 1.0
    out: list[list[_Word]] = []
    t = 0.0
    for s, ts in spoken:
        words = []
        for word, punctuated in ts:
            start, end = t * scale, (t + WORD_SECONDS * SPOKEN_FRACTION) * scale
            words.append(_Word(word, punctuated, round(start, 3), round(end, 3), s.speaker))
            t += WORD_SECONDS
        out.append(words)
        t += PAUSE_SECONDS
    return out


def _word_json(w: _Word, opts: ListenOptions) -> dict[str, Any]:
    out: dict[str, Any] = {"word": w.word, "start": w.start, "end": w.end, "confidence": CONFIDENCE}
    if opts.diarize:
        out["speaker"] = w.speaker
        out["speaker_confidence"] = CONFIDENCE
    if opts.punctuated:
        out["punctuated_word"] = w.punctuated
    return out


def _text(words: Sequence[_Word], opts: ListenOptions) -> str:
    return " ".join(w.punctuated if opts.punctuated else w.word for w in words)


def listen_response(
    said: Sequence[Said], *, opts: ListenOptions, duration_s: float, sha256: str, request_id: str
) -> dict[str, Any]:
    """The JSON body Deepgram answers a pre-recorded request with, for the options asked."""
    utterances = _timed_words(said, duration_s)
    all_words = [w for words in utterances for w in words]
    model_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"stand-in/{opts.model}"))
    channel: dict[str, Any] = {
        "alternatives": [
            {
                "transcript": _text(all_words, opts),
                "confidence": CONFIDENCE if all_words else 0.0,
                "words": [_word_json(w, opts) for w in all_words],
            }
        ]
    }
    if opts.detect_language:
        channel["detected_language"] = opts.language or "en"
        channel["language_confidence"] = CONFIDENCE
    results: dict[str, Any] = {"channels": [channel]}
    if opts.utterances:
        results["utterances"] = [
            {
                "start": words[0].start,
                "end": words[-1].end,
                "confidence": CONFIDENCE,
                "channel": 0,
                "transcript": _text(words, opts),
                "words": [_word_json(w, opts) for w in words],
                "speaker": words[0].speaker if opts.diarize else 0,
                "id": str(uuid.uuid4()),
            }
            for words in utterances
        ]
    created = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "metadata": {
            "transaction_key": "deprecated",
            "request_id": request_id,
            "sha256": sha256,
            "created": created,
            "duration": round(duration_s, 6),
            "channels": 1,
            "models": [model_id],
            "model_info": {model_id: {"name": f"{opts.model}-stand-in", "version": "stand-in", "arch": opts.model}},
        },
        "results": results,
    }


def said_from_json(data: Any) -> list[Said]:
    """One transcript sent to POST /_sandbox/script: a string, or a list of {"speaker", "text"} objects."""
    if isinstance(data, str):
        return [Said(0, data)]
    if isinstance(data, list) and all(
        isinstance(d, dict)
        and isinstance(d.get("text"), str)
        and isinstance(d.get("speaker"), int)
        and not isinstance(d.get("speaker"), bool)
        for d in data
    ):
        return [Said(d["speaker"], d["text"]) for d in data]
    raise ListenError(400, 'each transcript must be a string or a list of {"speaker": int, "text": str}')


class StandInDeepgram(LocalServer):
    """A Deepgram-compatible pre-recorded transcription server on localhost.

    Answers with scripted transcripts in order, or with a transcript that says it is a stand-in. `api_key` is the
    one key it accepts; None accepts any non-empty key.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        latency_s: float = 0.0,
        fetch_timeout_s: float = 30.0,
    ) -> None:
        super().__init__(host=host, port=port)
        self.api_key = api_key
        self.latency_s = latency_s
        self.fetch_timeout_s = fetch_timeout_s
        self._initial_latency = latency_s
        self.requests: list[RecordedRequest] = []
        self._transcripts: deque[list[Said]] = deque()
        self._failures: deque[Failure] = deque()

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/listen", self._listen)
        app.router.add_post("/_sandbox/script", self._control_script)
        app.router.add_post("/_sandbox/fail", self._control_fail)
        app.router.add_post("/_sandbox/latency", self._control_latency)
        app.router.add_post("/_sandbox/reset", self._control_reset)
        app.router.add_get("/_sandbox/requests", self._control_requests)
        return app

    @property
    def base_url(self) -> str:
        """What the SDK's environment `base` should be: the SDK appends /v1/listen itself."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.bound_port}"

    # -- scripting and inspection ----------------------------------------------------------------------------

    def script(self, *transcripts: str | Sequence[Said]) -> None:
        """Queue transcripts for the next successful requests: a string is one utterance by speaker 0."""
        for t in transcripts:
            self._transcripts.append([Said(0, t)] if isinstance(t, str) else list(t))

    def fail_next(
        self, count: int = 1, status: int = 503, *, retry_after: float | None = None, err_msg: str | None = None
    ) -> None:
        """Make the next `count` authorised requests fail with `status` (and a Retry-After header if given)."""
        if not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        self._failures.extend([Failure(status, retry_after, err_msg)] * count)

    def pending(self) -> tuple[int, int]:
        """Scripted transcripts and failures not used yet."""
        return len(self._transcripts), len(self._failures)

    def reset(self) -> None:
        self.requests.clear()
        self._transcripts.clear()
        self._failures.clear()
        self.latency_s = self._initial_latency

    # -- /v1/listen --------------------------------------------------------------------------------------------

    async def _listen(self, request: web.Request) -> web.StreamResponse:
        record = RecordedRequest(
            path=request.path,
            # A repeated parameter (keyterm, tag) is recorded as its values joined by commas.
            query={k: ",".join(request.query.getall(k)) for k in request.query},
            headers={k: v for k, v in request.headers.items() if k.lower() != "authorization"},
            at=time.monotonic(),
            content_type=request.headers.get("Content-Type", ""),
            request_id=str(uuid.uuid4()),
        )
        self.requests.append(record)
        try:
            response: web.StreamResponse = await self._transcribe(request, record)
        except ListenError as exc:
            # Read what the client is still sending, so it sees our answer rather than a reset connection.
            await self._drain(request, record)
            response = error_response(exc, record.request_id)
        else:
            response.headers["dg-request-id"] = record.request_id
        record.status = response.status
        return response

    async def _transcribe(self, request: web.Request, record: RecordedRequest) -> web.Response:
        self._check_auth(request)
        opts = listen_options(request.query)
        if self._failures:
            failure = self._failures.popleft()
            raise ListenError(failure.status, failure.err_msg, retry_after=failure.retry_after)
        probe = MediaProbe()
        if request.content_type == "application/json":
            record.url, content_type = await self._fetch_url(request, record, probe)
        else:
            content_type = request.content_type
            async for chunk in request.content.iter_chunked(CHUNK_BYTES):
                probe.feed(chunk)
            record.body_bytes = probe.size
        record.media_bytes, record.sha256 = probe.size, probe.sha256
        if probe.size == 0:
            raise ListenError(400)
        try:
            duration_s, exact = probe.duration(content_type)
        except CorruptMedia as exc:
            raise ListenError(400) from exc
        record.duration_s = duration_s
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)
        said = self._transcripts.popleft() if self._transcripts else stand_in_said(duration_s, exact, probe.size)
        body = listen_response(
            said, opts=opts, duration_s=duration_s, sha256=probe.sha256, request_id=record.request_id
        )
        return web.json_response(body)

    def _check_auth(self, request: web.Request) -> None:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        key = key.strip()
        if scheme.lower() not in ("token", "bearer") or not key or (self.api_key is not None and key != self.api_key):
            raise ListenError(401)

    async def _fetch_url(self, request: web.Request, record: RecordedRequest, probe: MediaProbe) -> tuple[str, str]:
        """Download the media the JSON body points at, as Deepgram does; returns the URL and its content type."""
        raw = await request.read()
        record.body_bytes = len(raw)
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ListenError(400, _BAD_JSON) from exc
        url = body.get("url") if isinstance(body, dict) else None
        if not isinstance(url, str) or not url:
            raise ListenError(400, "Invalid JSON submitted: missing field `url`.")
        try:
            # encoded=True: a presigned URL's signature covers its exact bytes, so they must not be re-quoted.
            target = URL(url, encoded=True)
        except ValueError as exc:
            raise ListenError(400, "Invalid URL.", err_code=_REMOTE) from exc
        if target.scheme not in ("http", "https"):
            raise ListenError(400, "Invalid URL: only http and https URLs can be fetched.", err_code=_REMOTE)
        timeout = aiohttp.ClientTimeout(total=self.fetch_timeout_s)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session, session.get(target) as remote:
                if remote.status >= 400:
                    kind = "client" if remote.status < 500 else "server"
                    said = f"{kind} error: {remote.status} {_phrase(remote.status, remote.reason)}"
                    raise ListenError(400, f"The remote server hosting the media returned a {said}.", err_code=_REMOTE)
                async for chunk in remote.content.iter_chunked(CHUNK_BYTES):
                    probe.feed(chunk)
                return url, remote.headers.get("Content-Type", "")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ListenError(400, "Could not fetch the media from the URL provided.", err_code=_REMOTE) from exc

    @staticmethod
    async def _drain(request: web.Request, record: RecordedRequest) -> None:
        try:
            async for chunk in request.content.iter_chunked(CHUNK_BYTES):
                record.body_bytes += len(chunk)
        except (aiohttp.ClientError, ConnectionError):
            pass  # the client went away; nobody is left to answer

    # -- /_sandbox control endpoints -------------------------------------------------------------------------

    @staticmethod
    async def _control_json(request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise web.HTTPBadRequest(text=f"invalid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="the body must be a JSON object")
        return body

    async def _control_script(self, request: web.Request) -> web.StreamResponse:
        body = await self._control_json(request)
        raw = body.get("transcripts")
        if not isinstance(raw, list):
            raise web.HTTPBadRequest(text="'transcripts' must be an array")
        try:
            transcripts = [said_from_json(t) for t in raw]
        except ListenError as exc:
            raise web.HTTPBadRequest(text=exc.err_msg) from exc
        self.script(*transcripts)
        return web.json_response({"queued": len(transcripts), "pending": len(self._transcripts)})

    async def _control_fail(self, request: web.Request) -> web.StreamResponse:
        body = await self._control_json(request)
        unknown = set(body) - {"count", "status", "retry_after", "err_msg"}
        count, status = body.get("count", 1), body.get("status", 503)
        retry_after, err_msg = body.get("retry_after"), body.get("err_msg")
        if (
            unknown
            or not _is_int(count)
            or count < 0
            or not _is_int(status)
            or not 400 <= status <= 599
            or not (retry_after is None or (_is_number(retry_after) and retry_after >= 0))
            or not (err_msg is None or isinstance(err_msg, str))
        ):
            raise web.HTTPBadRequest(
                text='expected {"count": int >= 0, "status": 400-599, "retry_after": seconds, "err_msg": str}'
            )
        self.fail_next(count, status, retry_after=retry_after, err_msg=err_msg)
        return web.json_response({"failing": len(self._failures)})

    async def _control_latency(self, request: web.Request) -> web.StreamResponse:
        body = await self._control_json(request)
        latency = body.get("latency_s", -1)
        if set(body) != {"latency_s"} or not _is_number(latency) or latency < 0:
            raise web.HTTPBadRequest(text='expected {"latency_s": seconds}')
        self.latency_s = float(latency)
        return web.json_response({"latency_s": self.latency_s})

    async def _control_reset(self, request: web.Request) -> web.StreamResponse:
        self.reset()
        return web.json_response({"ok": True})

    async def _control_requests(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"requests": [asdict(r) for r in self.requests]})


def _phrase(status: int, reason: str | None) -> str:
    """The standard reason phrase (servers differ: moto says NOT FOUND)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return reason or ""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


async def _serve(args: argparse.Namespace) -> None:
    server = StandInDeepgram(host=args.host, port=args.port, api_key=args.api_key, latency_s=args.latency)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        # One line, just the URL, so a parent process can read it to know the server is ready and where.
        print(server.base_url, flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.deepgram_server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766, help="0 picks a free port")
    parser.add_argument("--api-key", default=None, help="the only key accepted (default: any non-empty key)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds spent 'transcribing' each request")
    asyncio.run(_serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
