"""Discord's REST API for workers (no gateway): bot auth, rate limits waited out, errors mapped to `bot.errors`.

Discord answers 429 with `retry_after` (seconds) and a `global` flag: a route limit holds back that route, a
global one every request of this bot. Both are waited out and retried here; a wait longer than `max_wait_s` or
too many attempts becomes a `TransientUpstreamError`, so the job retries later instead of holding a slot.
"""

from __future__ import annotations

import asyncio
import io
import json as jsonlib
import mimetypes
import re
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

import aiohttp
import structlog

from bot.config import Settings
from bot.errors import PermanentUpstreamError, TransientUpstreamError
from bot.metrics import RATE_LIMITED

log = structlog.get_logger(__name__)

SERVICE = "discord"
USER_AGENT = "DiscordBot (https://github.com/threadbot/threadbot, 0.1)"
# Discord's JSON error codes for "the bot lacks a permission" and "the bot cannot see this channel".
MISSING_PERMISSIONS, MISSING_ACCESS = 50013, 50001
# Minor ids (messages) share their channel's bucket, so they are folded out of the bucket key.
_MINOR_ID = re.compile(r"(/messages)/\d+")


def bucket_key(method: str, path: str) -> str:
    return method + " " + _MINOR_ID.sub(r"\1/:id", path)


class DiscordRest:
    """One aiohttp session to `DISCORD_API_BASE`, safe to share between many jobs of a worker."""

    def __init__(
        self,
        settings: Settings,
        *,
        max_attempts: int = 5,
        max_wait_s: float = 30.0,
        timeout_s: float = 30.0,
    ) -> None:
        self._base = settings.discord_api_base.rstrip("/")
        self._token = settings.discord_token.get_secret_value()
        self._max_attempts = max_attempts
        self._max_wait_s = max_wait_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._global_until = 0.0
        self._route_until: dict[str, float] = {}

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        # Made lazily: a ClientSession must be created inside the running event loop.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"Authorization": f"Bot {self._token}", "User-Agent": USER_AGENT}, timeout=self._timeout
            )
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        files: Sequence[tuple[str, bytes]] = (),
        action: str = "do that",
    ) -> Any:
        """Call the API and return its JSON (None for 204). `files` (name, bytes) go as Discord's multipart form,
        with `json` as its `payload_json`. `action` completes "I'm not allowed to ..." in the message a user sees
        when Discord refuses for lack of a permission."""
        key = bucket_key(method, path)
        for attempt in range(1, self._max_attempts + 1):
            await self._wait_for_limits(key)
            body = {"data": multipart(json, files)} if files else {"json": json}
            try:
                async with self.session.request(method, self._base + path, **body) as response:
                    self._note_bucket(key, response)
                    if response.status == 429:
                        RATE_LIMITED.labels("discord").inc()
                        await self._rate_limited(key, response, attempt)
                        continue
                    if response.status >= 500:
                        if attempt == self._max_attempts:
                            raise TransientUpstreamError(SERVICE, f"{method} {path}: HTTP {response.status}")
                        await asyncio.sleep(min(2.0, 0.25 * 2**attempt))
                        continue
                    if response.status >= 400:
                        raise await _refusal(method, path, response, action)
                    if response.status == 204:
                        return None
                    return await response.json(content_type=None)
            except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                if attempt == self._max_attempts:
                    raise TransientUpstreamError(SERVICE, f"{method} {path}: {type(exc).__name__}") from exc
                await asyncio.sleep(min(2.0, 0.25 * 2**attempt))
        raise TransientUpstreamError(SERVICE, f"{method} {path}: still rate limited after {self._max_attempts} tries")

    async def _wait_for_limits(self, key: str) -> None:
        until = max(self._global_until, self._route_until.get(key, 0.0))
        delay = until - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def _note_bucket(self, key: str, response: aiohttp.ClientResponse) -> None:
        # Waiting before a request that would be refused is cheaper than the 429 (which also counts against us).
        if response.headers.get("X-RateLimit-Remaining") == "0":
            reset_after = _float(response.headers.get("X-RateLimit-Reset-After"))
            if reset_after:
                self._route_until[key] = time.monotonic() + reset_after

    async def _rate_limited(self, key: str, response: aiohttp.ClientResponse, attempt: int) -> None:
        body = await _json_or_empty(response)
        retry_after = _float(body.get("retry_after")) or _float(response.headers.get("Retry-After")) or 1.0
        is_global = bool(body.get("global")) or response.headers.get("X-RateLimit-Global") == "true"
        log.warning("discord rate limited", route=key, retry_after_s=retry_after, is_global=is_global)
        if retry_after > self._max_wait_s or attempt == self._max_attempts:
            raise TransientUpstreamError(SERVICE, f"rate limited on {key}", retry_after_s=retry_after)
        until = time.monotonic() + retry_after
        if is_global:
            self._global_until = max(self._global_until, until)
        else:
            self._route_until[key] = max(self._route_until.get(key, 0.0), until)


def multipart(payload: Any, files: Sequence[tuple[str, bytes]]) -> aiohttp.FormData:
    """The JSON as `payload_json` and each file as `files[n]`, matching `attachments[].id` = n. Built per attempt:
    aiohttp sends a FormData only once."""
    form = aiohttp.FormData()
    form.add_field("payload_json", jsonlib.dumps(payload), content_type="application/json")
    for index, (filename, content) in enumerate(files):
        content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        # A stream, not raw bytes: aiohttp writes it in chunks instead of holding the event loop for a large file.
        form.add_field(f"files[{index}]", io.BytesIO(content), filename=filename, content_type=content_type)
    return form


async def _refusal(method: str, path: str, response: aiohttp.ClientResponse, action: str) -> PermanentUpstreamError:
    body = await _json_or_empty(response)
    code, message = body.get("code"), str(body.get("message", ""))[:200]
    detail = f"{method} {path}: HTTP {response.status} code {code} {message}".strip()
    if response.status == 403 or code in (MISSING_PERMISSIONS, MISSING_ACCESS):
        log.warning("discord refused for lack of a permission", route=f"{method} {path}", code=code)
        user = f"I'm not allowed to {action} here (Discord says: {message or 'missing permissions'}). "
        user += "An administrator can fix this in the channel's permissions."
        return PermanentUpstreamError(SERVICE, detail, user)
    if response.status == 401:
        return PermanentUpstreamError(SERVICE, detail, "Discord refused my token; the operator needs to check it.")
    if response.status == 404:
        return PermanentUpstreamError(SERVICE, detail, "The channel or message I was answering is gone.")
    return PermanentUpstreamError(SERVICE, detail, f"Discord refused my message ({message or response.status}).")


async def _json_or_empty(response: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        body = await response.json(content_type=None)
    except (ValueError, aiohttp.ContentTypeError):
        return {}
    return body if isinstance(body, dict) else {}


def _float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
