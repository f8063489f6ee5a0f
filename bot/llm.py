"""The LLM port on `openai.AsyncOpenAI` (any OpenAI-compatible endpoint: OpenAI, Ollama, vLLM, the stand-in) or
`openai.AsyncAzureOpenAI` (Azure OpenAI's deployments and api-version).

The SDK's own retries are off: a transient failure goes back to the queue with a backoff (`Retry` in the job),
so a waiting turn holds no worker slot. OpenAI's exceptions are translated into `bot.errors` here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx2
import openai
import structlog

from bot.config import Settings
from bot.errors import ConfigurationError, PermanentUpstreamError, TransientUpstreamError, causes
from bot.metrics import LLM_FIRST_TOKEN_SECONDS, LLM_SECONDS
from bot.ports import ChatMessage, Tool, ToolCall, Usage
from bot.tokens import count_tokens
from bot.trace import mark

log = structlog.get_logger(__name__)
SERVICE = "llm"
# What migration 0004 made the pgvector column; EMBEDDING_DIMENSIONS changes it (bot.media.index).
DEFAULT_EMBEDDING_DIMENSIONS = 1536
DRAIN_TIMEOUT_S = 1.0


@dataclass(frozen=True, slots=True)
class SettingNames:
    """Which settings an administrator should check when the endpoint refuses: they differ on Azure."""

    endpoint: str = "OPENAI_BASE_URL"
    key: str = "OPENAI_API_KEY"
    model: str = "OPENAI_MODEL"


AZURE_SETTINGS = SettingNames("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_CHAT_DEPLOYMENT")


@dataclass(frozen=True, slots=True)
class AzureEndpoint:
    """Azure OpenAI: a resource URL and an api-version; the model names in requests are deployment names."""

    endpoint: str
    api_version: str


def takes_dimensions(embedding_model: str) -> bool:
    """Whether the model shortens its vectors on request (OpenAI's text-embedding-3 family, also on Azure when
    the deployment is named after it). Others (ada-002, Ollama's, vLLM's) refuse the parameter or ignore it."""
    return "text-embedding-3" in embedding_model


class OpenAILLM:
    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None,
        model: str,
        timeout_s: float,
        embedding_model: str = "text-embedding-3-small",
        embedding_dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS,
        concurrency: int = 100,
        azure: AzureEndpoint | None = None,
    ) -> None:
        # As many kept-alive connections as streams at once: past the SDK's 100, every reply beyond them opened a
        # connection and closed it afterwards. The SDK's aiohttp transport (aiohttp is here anyway) costs less CPU
        # per request than its default httpx one: 1.13 against 1.67 ms per streamed reply, stand-in included.
        limits = httpx2.Limits(max_connections=max(concurrency, 1000), max_keepalive_connections=concurrency)
        http_client = openai.DefaultAioHttpClient(limits=limits, timeout=timeout_s)
        if azure is not None:
            # Deployment URLs (/openai/deployments/{model}/...), ?api-version= on each request, the api-key header.
            self._client: openai.AsyncOpenAI = openai.AsyncAzureOpenAI(
                azure_endpoint=azure.endpoint,
                api_version=azure.api_version,
                api_key=api_key,
                timeout=timeout_s,
                max_retries=0,
                http_client=http_client,
            )
        else:
            self._client = openai.AsyncOpenAI(
                api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=0, http_client=http_client
            )
        self.model = model
        self.embedding_model = embedding_model
        self.embedding_dimensions = embedding_dimensions
        self._names = AZURE_SETTINGS if azure is not None else SettingNames()

    @classmethod
    def from_settings(cls, settings: Settings, *, stand_in_url: str | None = None) -> OpenAILLM:
        """The client the settings describe: Azure OpenAI, an OpenAI-compatible server, or (with `stand_in_url`,
        when no model is configured) the local stand-in."""
        common: dict[str, Any] = {
            "timeout_s": settings.openai_timeout_s,
            "embedding_dimensions": settings.embedding_dimensions,
            "concurrency": settings.worker_max_jobs,
        }
        if settings.llm_provider == "azure":
            missing = [
                name
                for name, value in (
                    ("AZURE_OPENAI_ENDPOINT", settings.azure_openai_endpoint),
                    ("AZURE_OPENAI_API_KEY", settings.azure_openai_api_key.get_secret_value()),
                )
                if not value
            ]
            if missing:
                raise ConfigurationError(f"LLM_PROVIDER=azure needs {' and '.join(missing)}.")
            return cls(
                api_key=settings.azure_openai_api_key.get_secret_value(),
                base_url=None,
                model=settings.azure_openai_chat_deployment or settings.openai_model,
                embedding_model=settings.azure_openai_embedding_deployment or settings.embedding_model,
                azure=AzureEndpoint(settings.azure_openai_endpoint, settings.azure_openai_api_version),
                **common,
            )
        base_url = stand_in_url if settings.uses_stand_in_llm and stand_in_url else settings.openai_base_url or None
        return cls(
            api_key=settings.openai_api_key.get_secret_value() or "no-key",
            base_url=base_url,
            model=settings.openai_model,
            embedding_model=settings.embedding_model,
            **common,
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def stream_chat(
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
        params = _wire_messages(messages, images)
        extra = _options(tools, json_schema, with_usage=usage is not None)
        if usage is not None:
            usage.model = model or self.model
        calls = _ToolCallParts()
        produced: list[str] = []
        mark("llm:request")
        asked_at = time.monotonic()
        first = True
        name = model or self.model
        try:
            # The raw server-sent events, parsed with json.loads: the SDK's typed chunk objects cost about
            # 0.2 ms each, which at hundreds of chunks per reply was the worker's largest CPU cost.
            # The messages go in `extra_body`, which the SDK sends as it is (it overrides `messages=[]`): passed as
            # `messages`, the SDK walks each one against its TypedDicts first, which was over half of its CPU per
            # request with a 20-message history (about 3 ms), and plain role/content dicts need no such transform.
            async with self._client.chat.completions.with_streaming_response.create(
                model=model or self.model,
                messages=[],
                extra_body={"messages": params},
                max_tokens=max_tokens,
                stream=True,
                **extra,
            ) as response:
                mark("llm:open")
                lines = response.iter_lines()
                async for line in lines:
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        await _drain(lines)
                        LLM_SECONDS.labels(name).observe(time.monotonic() - asked_at)
                        if tool_calls is not None:
                            tool_calls.extend(calls.finished())
                        if usage is not None and not usage.reported:
                            _estimate(usage, messages, produced)
                        return
                    content = _delta_content(data, calls, usage)
                    if content:
                        if first:
                            LLM_FIRST_TOKEN_SECONDS.labels(name).observe(time.monotonic() - asked_at)
                            first = False
                        mark("llm:delta")
                        if usage is not None:
                            produced.append(content)
                        yield content
        except openai.APIError as exc:
            raise translate_error(exc, self._names) from exc
        except httpx2.HTTPError as exc:  # the connection dropped mid-stream (openai 3 runs on httpx2)
            raise TransientUpstreamError(SERVICE, f"stream failed: {type(exc).__name__}: {exc}") from exc
        raise TransientUpstreamError(SERVICE, "stream ended without [DONE]")

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        try:
            extra: dict[str, Any] = {}
            if takes_dimensions(self.embedding_model):
                extra["dimensions"] = self.embedding_dimensions
            response = await self._client.embeddings.create(model=self.embedding_model, input=list(texts), **extra)
        except openai.APIError as exc:
            raise translate_error(exc, self._names) from exc
        except httpx2.HTTPError as exc:
            raise TransientUpstreamError(SERVICE, f"embeddings failed: {type(exc).__name__}: {exc}") from exc
        ordered = sorted(response.data, key=lambda item: item.index)
        vectors = [list(item.embedding) for item in ordered]
        wrong = next((len(v) for v in vectors if len(v) != self.embedding_dimensions), None)
        if wrong is not None:
            # Not retried: every call would get the same; the stored vectors and the setting must agree first.
            raise PermanentUpstreamError(
                SERVICE,
                f"the embeddings model {self.embedding_model} returned {wrong}-dimension vectors but "
                f"EMBEDDING_DIMENSIONS is {self.embedding_dimensions}: set EMBEDDING_DIMENSIONS={wrong} and run "
                "`bot index reembed`",
                "The embeddings model's vectors do not match EMBEDDING_DIMENSIONS. An administrator needs to set "
                f"EMBEDDING_DIMENSIONS={wrong} and run `bot index reembed`.",
            )
        return vectors


def _wire_messages(messages: Sequence[ChatMessage], images: Sequence[str]) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [{"role": m.role, "content": m.content} for m in messages]
    if images and params:
        # The last message as content parts: its text, then each picture (OpenAI's vision input).
        parts: list[dict[str, Any]] = [{"type": "text", "text": messages[-1].content}]
        parts += [{"type": "image_url", "image_url": {"url": url}} for url in images]
        params[-1] = {"role": messages[-1].role, "content": parts}
    return params


def _options(tools: Sequence[Tool], json_schema: dict[str, Any] | None, *, with_usage: bool) -> dict[str, Any]:
    """The request's optional parameters: the tools the model may call, the JSON its answer must match, and the
    token counts in the last chunk (budgets and cost per run are built on them)."""
    extra: dict[str, Any] = {"stream_options": {"include_usage": True}} if with_usage else {}
    if tools:
        extra["tools"] = [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
            }
            for t in tools
        ]
    if json_schema is not None:
        # Not `strict`: strict mode refuses many ordinary schemas; the chain validates and retries instead.
        extra["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": json_schema, "strict": False},
        }
    return extra


class _ToolCallParts:
    """Tool calls arrive in pieces: a head with the name, then fragments of the JSON arguments, by index."""

    def __init__(self) -> None:
        self._names: dict[int, str] = {}
        self._arguments: dict[int, list[str]] = {}

    def add(self, delta: dict[str, Any]) -> None:
        index = delta.get("index", 0)
        function = delta.get("function") or {}
        if function.get("name"):
            self._names[index] = function["name"]
        self._arguments.setdefault(index, []).append(function.get("arguments") or "")

    def finished(self) -> list[ToolCall]:
        calls = []
        for index, name in sorted(self._names.items()):
            raw = "".join(self._arguments.get(index, []))
            try:
                arguments = json.loads(raw) if raw.strip() else {}
            except json.JSONDecodeError:
                log.warning("model sent unreadable tool arguments; ignoring the call", tool=name)
                continue
            if isinstance(arguments, dict):
                calls.append(ToolCall(name, arguments))
        return calls


async def _drain(lines: AsyncIterator[str]) -> None:
    """Read what follows [DONE] (the end of the chunked body). A response closed before its end also closes its
    connection, so every request would open a new one (a TLS handshake, against a real endpoint); read to the end,
    it goes back to the pool. Bounded: a server that keeps the stream open after [DONE] only loses the reuse."""
    with contextlib.suppress(TimeoutError, httpx2.HTTPError, openai.APIError):
        async with asyncio.timeout(DRAIN_TIMEOUT_S):
            async for _ in lines:
                pass


def _estimate(usage: Usage, messages: Sequence[ChatMessage], produced: list[str]) -> None:
    """Counts for an endpoint that reports no usage (some OpenAI-compatible servers): counted from the text."""
    usage.prompt_tokens = sum(count_tokens(m.content, usage.model) for m in messages)
    usage.completion_tokens = count_tokens("".join(produced), usage.model) if produced else 0


def _read_usage(usage: Usage, reported: Any) -> None:
    if not isinstance(reported, dict):
        return
    prompt, completion = reported.get("prompt_tokens"), reported.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion, int):
        usage.prompt_tokens, usage.completion_tokens, usage.reported = prompt, completion, True


def _delta_content(data: str, calls: _ToolCallParts, usage: Usage | None = None) -> str:
    try:
        chunk = json.loads(data)
    except json.JSONDecodeError as exc:
        raise TransientUpstreamError(SERVICE, f"unreadable stream chunk: {data[:200]!r}") from exc
    if not isinstance(chunk, dict):
        return ""
    if "error" in chunk:  # an error event inside the stream: the server gave up mid-answer
        raise TransientUpstreamError(SERVICE, f"error in stream: {str(chunk['error'])[:500]}")
    if usage is not None and chunk.get("usage"):
        _read_usage(usage, chunk["usage"])
        if isinstance(chunk.get("model"), str) and chunk["model"]:
            usage.model = chunk["model"]  # the model that answered (a dated version of the one asked for)
    choices = chunk.get("choices") or []
    if not choices or not isinstance(choices[0], dict):
        return ""
    delta = choices[0].get("delta") or {}
    if not isinstance(delta, dict):
        return ""
    for call in delta.get("tool_calls") or ():
        if isinstance(call, dict):
            calls.add(call)
    content = delta.get("content")
    return content if isinstance(content, str) else ""


def _retry_after(exc: openai.APIStatusError) -> float | None:
    value = exc.response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _connection_failure(exc: BaseException) -> OSError | None:
    """The socket error under an SDK exception, if the connection itself failed (not a timeout): the SDK's aiohttp
    transport reports a refused connection as a connect *timeout*, which sent operators looking in the wrong place."""
    for cause in causes(exc):
        if isinstance(cause, OSError) and not isinstance(cause, TimeoutError) and cause.errno is not None:
            return cause
    return None


def translate_error(
    exc: openai.APIError, names: SettingNames = SettingNames()
) -> TransientUpstreamError | PermanentUpstreamError:
    if isinstance(exc, openai.APIConnectionError) and (failed := _connection_failure(exc)) is not None:
        return TransientUpstreamError(SERVICE, f"could not connect: {failed.strerror or failed}")
    if isinstance(exc, openai.APITimeoutError):
        return TransientUpstreamError(SERVICE, "timed out")
    if isinstance(exc, openai.APIConnectionError):
        return TransientUpstreamError(SERVICE, f"connection failed: {exc}")
    if isinstance(exc, openai.RateLimitError):
        return TransientUpstreamError(SERVICE, "rate limited (429)", retry_after_s=_retry_after(exc))
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code in (501, 505):
            return PermanentUpstreamError(
                SERVICE,
                f"does not support the request ({exc.status_code}): {exc.message}",
                "The language model endpoint does not support this kind of request. An administrator needs to "
                f"check {names.endpoint}.",
            )
        if exc.status_code >= 500 or exc.status_code in (408, 409):
            return TransientUpstreamError(SERVICE, f"server error {exc.status_code}", retry_after_s=_retry_after(exc))
        if exc.status_code in (401, 403):
            return PermanentUpstreamError(
                SERVICE,
                f"refused credentials ({exc.status_code})",
                f"The language model refused my credentials. An administrator needs to check {names.key}.",
            )
        if exc.status_code == 404:
            return PermanentUpstreamError(
                SERVICE,
                f"not found: {exc.message}",
                f"The configured model was not found. An administrator needs to check {names.model} and "
                f"{names.endpoint}.",
            )
        return PermanentUpstreamError(
            SERVICE,
            f"rejected the request ({exc.status_code}): {exc.message}",
            "The language model rejected this request. Try rephrasing or starting a new thread.",
        )
    # A stream cut off mid-way (the connection dropped) surfaces as a bare APIError: try again.
    return TransientUpstreamError(SERVICE, f"stream failed: {exc.message}")
