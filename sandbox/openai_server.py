"""Local OpenAI-compatible HTTP server: the offline stand-in LLM for the demo, tests and benchmarks.

Speaks enough of /v1/chat/completions, /v1/embeddings and /v1/models for the official SDK, and is scriptable.
Asked for JSON (`response_format`) with nothing scripted, it answers with JSON that matches the schema.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import itertools
import json
import math
import re
import signal
import struct
import time
from collections import deque
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from sandbox.schema_answers import answer_for
from sandbox.serving import LocalServer

__all__ = ["RecordedRequest", "StandInLLM", "Step"]

DEFAULT_MODEL = "stand-in"
DEFAULT_EMBEDDING_DIMENSIONS = 1536
# Bounds keep a stray script or request from making the server allocate gigabytes.
MAX_EMBEDDING_DIMENSIONS = 16384
MAX_LONG_REPLY = 2_000_000
USER_TEXT_LIMIT = 200
CHARS_PER_TOKEN = 4
# How often a hanging handler checks whether its client went away or the server is stopping.
HANG_POLL_SECONDS = 0.05

_LONG_RE = re.compile(r"LONG:(\d+)")
# A word plus the whitespace after it, so that joining the pieces gives back the text exactly.
_PIECE_RE = re.compile(r"\s*\S+\s*|\s+")
_WORD_RE = re.compile(r"\w+")
_LOREM_TEXT = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et "
    "dolore magna aliqua enim ad minim veniam quis nostrud exercitation ullamco laboris nisi aliquip ex ea "
    "commodo consequat duis aute irure in reprehenderit voluptate velit esse cillum fugiat nulla pariatur "
    "excepteur sint occaecat cupidatat non proident sunt culpa qui officia deserunt mollit anim id est "
    "laborum"
)
_LOREM = _LOREM_TEXT.split()

_ERROR_TYPES: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "permission_denied"),
    404: ("not_found_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    409: ("conflict_error", "conflict"),
    413: ("invalid_request_error", "request_too_large"),
    422: ("invalid_request_error", "unprocessable_entity"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    500: ("server_error", "internal_server_error"),
    502: ("server_error", "bad_gateway"),
    503: ("server_error", "service_unavailable"),
    504: ("server_error", "gateway_timeout"),
}


@dataclass
class Step:
    """One scripted behaviour, consumed by the next chat-completions request."""

    reply: str | None = None
    status: int | None = None
    retry_after: float | None = None
    delay: float = 0.0
    hang: bool = False
    tool_calls: list[dict[str, Any]] | None = None
    fail_after_chars: int | None = None


@dataclass
class RecordedRequest:
    path: str
    body: dict[str, Any]
    at: float
    # time.monotonic() (one clock for every process on the machine) when the first content chunk and the end
    # of the answer were written: benchmarks subtract the model's own time from end-to-end figures with these.
    first_token_at: float | None = None
    done_at: float | None = None
    # The client's (host, port): requests that share it came over one kept-alive connection.
    peer: tuple[str, int] | None = None
    # Azure OpenAI's shape: the deployment named in the path, ?api-version=, and whether the key came as `api-key`.
    deployment: str | None = None
    api_version: str | None = None
    api_key_header: bool = False


class BadRequest(Exception):
    """A request (or control command) the server refuses with a 400."""


# OpenAI's moderation categories (omni-moderation), every one present in each result as the real endpoint sends.
MODERATION_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
# What the stand-in flags unless a test says otherwise: words nobody types by accident.
DEFAULT_FLAGGED_TERMS = {"flagme-violence": "violence", "flagme-harassment": "harassment"}


def error_body(status: int, message: str) -> dict[str, Any]:
    """The JSON body OpenAI sends with an error status."""
    err_type, code = _ERROR_TYPES.get(status, ("server_error" if status >= 500 else "invalid_request_error", "error"))
    return {"error": {"message": message, "type": err_type, "param": None, "code": code}}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(error_body(status, message), status=status, headers=headers)


def estimate_tokens_for(chars: int) -> int:
    """Token count the usage fields report: about 4 characters per token, rounded up."""
    return math.ceil(chars / CHARS_PER_TOKEN)


def content_text(content: Any) -> str:
    """Text of a message's content, which is a string or a list of typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def long_text(n: int) -> str:
    """Deterministic lorem-ish text of exactly n characters, in sentences and paragraphs so splitters have work."""
    parts: list[str] = []
    length = 0
    words = itertools.cycle(_LOREM)
    sentence = 0
    while length < n:
        sentence += 1
        count = 8 + sentence % 7
        text = " ".join(next(words) for _ in range(count))
        text = text[0].upper() + text[1:] + "."
        sep = "\n\n" if sentence % 5 == 0 else " "
        parts.append(text + sep)
        length += len(text) + len(sep)
    out = "".join(parts)[:n]
    # Chat platforms strip trailing whitespace, which would make the length checks of callers flaky.
    if out and out[-1].isspace():
        out = out[:-1] + "."
    return out


def default_reply(messages: list[Any], response_format: Any = None) -> str:
    """The honest, request-derived reply used when nothing is scripted: for a request that asks for JSON
    (`response_format`), JSON matching its schema, with strings taken from the user's text."""
    last_user = -1
    for i, msg in enumerate(messages):
        if isinstance(msg, dict) and msg.get("role") == "user":
            last_user = i
    before = messages if last_user < 0 else messages[:last_user]
    earlier = sum(1 for m in before if isinstance(m, dict) and m.get("role") in ("user", "assistant"))
    user_text = content_text(messages[last_user].get("content")) if last_user >= 0 else ""
    if isinstance(response_format, dict):
        json_answer = answer_for(response_format, user_text)
        if json_answer is not None:
            return json_answer
    long_match = _LONG_RE.search(user_text)
    if long_match:
        return long_text(min(int(long_match.group(1)), MAX_LONG_REPLY))
    content = messages[last_user].get("content") if last_user >= 0 else None
    pictures = (
        sum(1 for part in content if isinstance(part, dict) and part.get("type") == "image_url")
        if isinstance(content, list)
        else 0
    )
    shown = (
        f" and {pictures} picture{'s' if pictures != 1 else ''} (which a stand-in cannot look at)" if pictures else ""
    )
    return (
        f'[stand-in model] You said: "{user_text[:USER_TEXT_LIMIT]}"{shown}. '
        f"I can see {earlier} earlier messages in this conversation. "
        "This reply comes from the local stand-in, not a real model."
    )


def split_chunks(text: str, words_per_chunk: int) -> list[str]:
    """Split into pieces of `words_per_chunk` words each, keeping all whitespace so that "".join() == text."""
    pieces = _PIECE_RE.findall(text)
    size = max(1, words_per_chunk)
    return ["".join(pieces[i : i + size]) for i in range(0, len(pieces), size)]


def embed(text: str, dimensions: int) -> list[float]:
    """Deterministic unit vector from hashed word and character-trigram features.

    Signed feature hashing keeps unrelated texts near-orthogonal; shared words push vectors together, and
    trigrams give partial credit to inflections ("cat" vs "cats").
    """
    vec = [0.0] * dimensions
    features: list[tuple[str, float]] = []
    for word in _WORD_RE.findall(text.lower()):
        features.append(("w:" + word, 1.0))
        padded = f"#{word}#"
        features.extend(("t:" + padded[i : i + 3], 0.25) for i in range(len(padded) - 2))
    if not features:
        # Empty or punctuation-only input still needs a unit vector.
        features.append(("empty:" + text, 1.0))
    for feature, weight in features:
        digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
        value = int.from_bytes(digest, "little")
        vec[value % dimensions] += weight if (value >> 63) & 1 else -weight
    norm = math.sqrt(sum(x * x for x in vec))
    if norm == 0.0:
        # Features cancelled out exactly; fall back to a fixed axis rather than dividing by zero.
        vec[0], norm = 1.0, 1.0
    return [x / norm for x in vec]


def _number(value: Any, name: str, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or not math.isfinite(value):
        raise BadRequest(f"{name} must be a non-negative number")
    return float(value)


def step_from_json(data: Any) -> Step:
    """Validate one step sent to POST /_sandbox/script."""
    if not isinstance(data, dict):
        raise BadRequest("each step must be an object")
    known = {f.name for f in fields(Step)}
    unknown = set(data) - known
    if unknown:
        raise BadRequest(f"unknown step fields: {sorted(unknown)}")
    step = Step(**data)
    if step.reply is not None and not isinstance(step.reply, str):
        raise BadRequest("reply must be a string")
    if step.status is not None and (
        isinstance(step.status, bool) or not isinstance(step.status, int) or not 400 <= step.status <= 599
    ):
        raise BadRequest("status must be an integer HTTP error status (400-599)")
    step.retry_after = _number(step.retry_after, "retry_after", allow_none=True)
    step.delay = _number(step.delay, "delay") or 0.0
    if not isinstance(step.hang, bool):
        raise BadRequest("hang must be a boolean")
    if step.tool_calls is not None and (
        not isinstance(step.tool_calls, list)
        or not all(isinstance(c, dict) and isinstance(c.get("name"), str) for c in step.tool_calls)
    ):
        raise BadRequest('tool_calls must be a list of {"name": str, "arguments": object}')
    if step.fail_after_chars is not None and (
        isinstance(step.fail_after_chars, bool)
        or not isinstance(step.fail_after_chars, int)
        or step.fail_after_chars < 0
    ):
        raise BadRequest("fail_after_chars must be a non-negative integer")
    return step


@dataclass
class _Completion:
    """What one chat request will answer, worked out before anything is sent."""

    model: str
    content: str | None
    tool_calls: list[dict[str, Any]]
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    fail_after_chars: int | None = None
    id: str = ""
    created: int = field(default_factory=lambda: int(time.time()))

    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


class StandInLLM(LocalServer):
    """An OpenAI-compatible server on localhost whose answers are scripted or derived from the request."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token_delay: float = 0.0,
        first_token_delay: float = 0.0,
        chunk_words: int = 1,
    ) -> None:
        super().__init__(host=host, port=port)
        self.token_delay = token_delay
        self.first_token_delay = first_token_delay
        self.chunk_words = chunk_words
        self._initial_latency = (token_delay, first_token_delay)
        self.requests: list[RecordedRequest] = []
        self._steps: deque[Step] = deque()
        self._stopping = False
        self._counter = itertools.count(1)
        # Moderation: a text containing one of these words (any case) is flagged in its category.
        self.flagged_terms: dict[str, str] = dict(DEFAULT_FLAGGED_TERMS)

    # -- lifecycle -----------------------------------------------------------------------------------------------

    def build_app(self) -> web.Application:
        self._stopping = False
        app = web.Application(middlewares=[self._openai_errors], client_max_size=64 * 1024 * 1024)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/v1/models/{model}", self._model)
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_post("/v1/moderations", self._moderations)
        # Azure OpenAI: the same operations under a deployment, with ?api-version= and an `api-key` header.
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self._chat_completions)
        app.router.add_post("/openai/deployments/{deployment}/embeddings", self._embeddings)
        app.router.add_post("/_sandbox/script", self._control_script)
        app.router.add_get("/_sandbox/requests", self._control_requests)
        app.router.add_post("/_sandbox/reset", self._control_reset)
        app.router.add_post("/_sandbox/latency", self._control_latency)
        return app

    async def before_stop(self) -> None:
        self._stopping = True  # hanging handlers see it and let go

    @property
    def port_number(self) -> int:
        return self.bound_port

    @property
    def base_url(self) -> str:
        host = self.host
        # A wildcard bind is reachable on loopback; clients cannot connect to the wildcard address itself.
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port_number}/v1"

    # -- scripting and inspection ----------------------------------------------------------------------------

    def script(self, *steps: Step) -> None:
        self._steps.extend(steps)

    def pending_steps(self) -> int:
        return len(self._steps)

    def chat_requests(self) -> list[dict[str, Any]]:
        return [r.body for r in self.requests if r.path.endswith("/chat/completions")]

    def reset(self) -> None:
        self._steps.clear()
        self.requests.clear()
        self.token_delay, self.first_token_delay = self._initial_latency

    # -- HTTP plumbing -----------------------------------------------------------------------------------------

    @web.middleware
    async def _openai_errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Auth for /v1 and OpenAI-shaped bodies for the errors aiohttp raises itself (404, 405, 413)."""
        is_api = request.path.startswith("/v1/")
        if is_api and not request.headers.get("Authorization", "").startswith("Bearer "):
            return error_response(
                401, "You didn't provide an API key. You need to provide your API key in an Authorization header."
            )
        if request.path.startswith("/openai/"):
            if not request.headers.get("api-key"):
                return error_response(
                    401, "Access denied due to missing subscription key. Make sure to include the api-key header."
                )
            if not request.query.get("api-version"):
                return error_response(404, "Resource not found: the api-version query parameter is required.")
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            # Keep Allow (405) but not aiohttp's text/plain Content-Type.
            allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
            return error_response(exc.status, exc.reason, headers=allow)
        except BadRequest as exc:
            return error_response(400, str(exc))

    async def _json_body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadRequest(f"We could not parse the JSON body of your request: {exc}") from exc
        if not isinstance(body, dict):
            raise BadRequest("The request body must be a JSON object.")
        return body

    def _record(self, request: web.Request, body: dict[str, Any]) -> RecordedRequest:
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        record = RecordedRequest(
            path=request.path,
            body=body,
            at=time.monotonic(),
            peer=tuple(peer[:2]) if peer else None,
            deployment=request.match_info.get("deployment"),
            api_version=request.query.get("api-version"),
            api_key_header="api-key" in request.headers,
        )
        self.requests.append(record)
        return record

    async def _wait_forever(self, request: web.Request) -> None:
        """Hold the request open until the client disconnects or the server stops."""
        while not self._stopping:
            transport = request.transport
            if transport is None or transport.is_closing():
                return
            await asyncio.sleep(HANG_POLL_SECONDS)

    @staticmethod
    def _drop_connection(request: web.Request) -> None:
        if request.transport is not None:
            request.transport.abort()

    # -- /v1/models --------------------------------------------------------------------------------------------

    @staticmethod
    def _model_object(model: str) -> dict[str, Any]:
        return {"id": model, "object": "model", "created": 0, "owned_by": "sandbox"}

    async def _models(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"object": "list", "data": [self._model_object(DEFAULT_MODEL)]})

    async def _model(self, request: web.Request) -> web.StreamResponse:
        # Any model name is accepted, so clients configured for a real model id still work.
        return web.json_response(self._model_object(request.match_info["model"]))

    # -- /v1/chat/completions ----------------------------------------------------------------------------------

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        body = await self._json_body(request)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("'messages' is required and must be a non-empty array.")
        if not all(isinstance(m, dict) for m in messages):
            raise BadRequest("Each entry of 'messages' must be an object.")
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise BadRequest("'stream' must be a boolean.")
        record = self._record(request, body)
        step = self._steps.popleft() if self._steps else Step()

        if step.hang:
            await self._wait_forever(request)
            self._drop_connection(request)
            return web.Response(status=499)
        if step.delay > 0:
            await asyncio.sleep(step.delay)
        if step.status is not None:
            headers = {"Retry-After": f"{step.retry_after:g}"} if step.retry_after is not None else None
            return error_response(step.status, f"Scripted error from the stand-in model (HTTP {step.status}).", headers)

        completion = self._build_completion(body, messages, step)
        if stream:
            response = await self._stream_completion(request, body, completion, record)
        else:
            response = await self._plain_completion(request, completion)
        record.done_at = time.monotonic()
        return response

    def _build_completion(self, body: dict[str, Any], messages: list[Any], step: Step) -> _Completion:
        reply = step.reply
        tool_calls = [self._tool_call(i, call) for i, call in enumerate(step.tool_calls or [])]
        if reply is None and not tool_calls:
            reply = default_reply(messages, body.get("response_format"))
        finish_reason = "tool_calls" if tool_calls else "stop"
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        if isinstance(limit, int) and not isinstance(limit, bool) and limit >= 0 and reply is not None:
            max_chars = limit * CHARS_PER_TOKEN
            if len(reply) > max_chars:
                reply, finish_reason, tool_calls = reply[:max_chars], "length", []
        prompt_chars = sum(len(content_text(m.get("content"))) for m in messages)
        completion_chars = len(reply or "") + sum(len(c["function"]["arguments"]) for c in tool_calls)
        return _Completion(
            model=str(body.get("model") or DEFAULT_MODEL),
            content=reply,
            tool_calls=tool_calls,
            finish_reason=finish_reason,
            prompt_tokens=estimate_tokens_for(prompt_chars),
            completion_tokens=estimate_tokens_for(completion_chars),
            fail_after_chars=step.fail_after_chars,
            id=f"chatcmpl-standin-{next(self._counter)}",
        )

    def _tool_call(self, index: int, call: dict[str, Any]) -> dict[str, Any]:
        arguments = call.get("arguments", {})
        # Scripts give arguments as an object for convenience; the wire format wants a JSON string.
        args_text = arguments if isinstance(arguments, str) else json.dumps(arguments)
        call_id = call.get("id") or f"call_standin_{next(self._counter)}_{index}"
        return {"id": call_id, "type": "function", "function": {"name": call["name"], "arguments": args_text}}

    async def _plain_completion(self, request: web.Request, c: _Completion) -> web.StreamResponse:
        if c.fail_after_chars is not None:
            # Without a stream there is nothing partial to send: the connection just dies.
            self._drop_connection(request)
            return web.Response(status=499)
        # Same total generation time a streaming client would see.
        pieces = len(split_chunks(c.content or "", self.chunk_words)) + len(c.tool_calls)
        latency = self.first_token_delay + self.token_delay * max(0, pieces - 1)
        if latency > 0:
            await asyncio.sleep(latency)
        message: dict[str, Any] = {"role": "assistant", "content": c.content, "refusal": None}
        if c.tool_calls:
            message["tool_calls"] = c.tool_calls
        return web.json_response(
            {
                "id": c.id,
                "object": "chat.completion",
                "created": c.created,
                "model": c.model,
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": c.finish_reason}],
                "usage": c.usage(),
                "system_fingerprint": "fp_standin",
            },
            headers={"x-request-id": c.id},
        )

    def _chunk(self, c: _Completion, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": c.id,
            "object": "chat.completion.chunk",
            "created": c.created,
            "model": c.model,
            "system_fingerprint": "fp_standin",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }

    def _deltas(self, c: _Completion) -> list[dict[str, Any]]:
        """The content and tool-call deltas, in order, each one "token" for latency purposes."""
        deltas: list[dict[str, Any]] = [{"content": piece} for piece in split_chunks(c.content or "", self.chunk_words)]
        for index, call in enumerate(c.tool_calls):
            # Like OpenAI: the first delta names the call, later ones append to the arguments string.
            args = call["function"]["arguments"]
            name = call["function"]["name"]
            head = {"index": index, "id": call["id"], "type": "function", "function": {"name": name, "arguments": ""}}
            deltas.append({"tool_calls": [head]})
            half = len(args) // 2
            for part in (args[:half], args[half:]):
                if part:
                    deltas.append({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
        return deltas

    async def _stream_completion(  # noqa: C901 (one branch per wire-protocol case; splitting hides the order)
        self, request: web.Request, body: dict[str, Any], c: _Completion, record: RecordedRequest
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "x-request-id": c.id,
            }
        )
        await response.prepare(request)
        stream_options = body.get("stream_options")
        include_usage = isinstance(stream_options, dict) and bool(stream_options.get("include_usage"))

        async def send(payload: dict[str, Any] | str) -> None:
            data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
            await response.write(f"data: {data}\n\n".encode())

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            out = self._chunk(c, delta, finish_reason)
            if include_usage:
                out["usage"] = None
            return out

        await send(chunk({"role": "assistant", "content": "", "refusal": None}))
        sent_chars = 0
        for i, delta in enumerate(self._deltas(c)):
            delay = self.first_token_delay if i == 0 else self.token_delay
            if delay > 0:
                await asyncio.sleep(delay)
            if self._stopping:
                self._drop_connection(request)
                return response
            if c.fail_after_chars is not None and "content" in delta:
                room = c.fail_after_chars - sent_chars
                if room < len(delta["content"]):
                    if room > 0:
                        await send(chunk({"content": delta["content"][:room]}))
                    self._drop_connection(request)
                    return response
                sent_chars += len(delta["content"])
            await send(chunk(delta))
            if record.first_token_at is None:
                record.first_token_at = time.monotonic()
        if c.fail_after_chars is not None:
            # The whole reply fitted under the limit: still fail, before the finish chunk, as scripted.
            self._drop_connection(request)
            return response
        await send(chunk({}, c.finish_reason))
        if include_usage:
            final = self._chunk(c, {})
            final["choices"] = []
            final["usage"] = c.usage()
            await send(final)
        await send("[DONE]")
        await response.write_eof()
        return response

    # -- /v1/embeddings ----------------------------------------------------------------------------------------

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        body = await self._json_body(request)
        texts = self._embedding_inputs(body.get("input"))
        dimensions = body.get("dimensions", DEFAULT_EMBEDDING_DIMENSIONS)
        if (
            isinstance(dimensions, bool)
            or not isinstance(dimensions, int)
            or not 1 <= dimensions <= MAX_EMBEDDING_DIMENSIONS
        ):
            raise BadRequest(f"'dimensions' must be an integer between 1 and {MAX_EMBEDDING_DIMENSIONS}.")
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            raise BadRequest("'encoding_format' must be 'float' or 'base64'.")
        self._record(request, body)
        data: list[dict[str, Any]] = []
        for index, text in enumerate(texts):
            vector = embed(text, dimensions)
            encoded: list[float] | str = vector
            if encoding == "base64":
                # Little-endian float32, which is what the SDK decodes (array("f") / numpy float32).
                encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = sum(estimate_tokens_for(len(t)) for t in texts)
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": str(body.get("model") or DEFAULT_MODEL),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    # -- /v1/moderations ---------------------------------------------------------------------------------------

    async def _moderations(self, request: web.Request) -> web.StreamResponse:
        body = await self._json_body(request)
        raw = body.get("input")
        texts = [raw] if isinstance(raw, str) else raw
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise BadRequest("'input' must be a string or a non-empty array of strings.")
        self._record(request, body)
        results = []
        for text in texts:
            hits = {category for term, category in self.flagged_terms.items() if term.lower() in text.lower()}
            categories = {name: name in hits for name in MODERATION_CATEGORIES}
            results.append(
                {
                    "flagged": bool(hits),
                    "categories": categories,
                    "category_scores": {name: 0.99 if hit else 0.001 for name, hit in categories.items()},
                    "category_applied_input_types": {name: ["text"] for name in MODERATION_CATEGORIES},
                }
            )
        model = str(body.get("model") or "omni-moderation-latest")
        return web.json_response({"id": f"modr-{next(self._counter)}", "model": model, "results": results})

    @staticmethod
    def _embedding_inputs(raw: Any) -> list[str]:
        def token_text(tokens: list[Any]) -> str:
            # Token-id input has no text; each id becomes a word so equal ids still count as shared features.
            return " ".join(f"tok{t}" for t in tokens)

        if isinstance(raw, str):
            return [raw]
        if isinstance(raw, list) and raw:
            if all(isinstance(x, str) for x in raw):
                return list(raw)
            if all(isinstance(x, int) for x in raw):
                return [token_text(raw)]
            if all(isinstance(x, list) and all(isinstance(t, int) for t in x) for x in raw):
                return [token_text(x) for x in raw]
        raise BadRequest("'input' must be a string, a non-empty array of strings, or token arrays.")

    # -- /_sandbox control endpoints -------------------------------------------------------------------------

    async def _control_script(self, request: web.Request) -> web.StreamResponse:
        body = await self._json_body(request)
        raw_steps = body.get("steps")
        if not isinstance(raw_steps, list):
            raise BadRequest("'steps' must be an array of step objects.")
        try:
            steps = [step_from_json(s) for s in raw_steps]
        except TypeError as exc:
            raise BadRequest(str(exc)) from exc
        self.script(*steps)
        return web.json_response({"queued": len(steps), "pending": len(self._steps)})

    async def _control_requests(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"requests": [asdict(r) for r in self.requests]})

    async def _control_reset(self, request: web.Request) -> web.StreamResponse:
        self.reset()
        return web.json_response({"ok": True})

    async def _control_latency(self, request: web.Request) -> web.StreamResponse:
        body = await self._json_body(request)
        unknown = set(body) - {"token_delay", "first_token_delay"}
        if unknown:
            raise BadRequest(f"unknown latency fields: {sorted(unknown)}")
        # Validate both before applying either, so a bad request changes nothing.
        token_delay = _number(body.get("token_delay", self.token_delay), "token_delay")
        first_token_delay = _number(body.get("first_token_delay", self.first_token_delay), "first_token_delay")
        self.token_delay = token_delay or 0.0
        self.first_token_delay = first_token_delay or 0.0
        return web.json_response({"token_delay": self.token_delay, "first_token_delay": self.first_token_delay})


def step_to_json(step: Step) -> dict[str, Any]:
    """The JSON form POST /_sandbox/script accepts, for clients scripting a server in another process."""
    return {k: v for k, v in asdict(step).items() if v != getattr(Step(), k)}


async def _serve(args: argparse.Namespace) -> None:
    llm = StandInLLM(
        host=args.host,
        port=args.port,
        token_delay=args.token_delay,
        first_token_delay=args.first_token_delay,
        chunk_words=args.chunk_words,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with llm:
        # One line, just the URL, so a parent process can read it to know the server is ready and where.
        print(llm.base_url, flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.openai_server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--token-delay", type=float, default=0.0, help="seconds between streamed chunks")
    parser.add_argument("--first-token-delay", type=float, default=0.0, help="seconds before the first chunk")
    parser.add_argument("--chunk-words", type=int, default=1, help="words per streamed chunk")
    asyncio.run(_serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
