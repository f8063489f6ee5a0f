"""Downloading files users shared in Slack: `url_private_download` with the bot token, streamed, size-limited.

The token is sent only to pinned origins (scheme, host and port): Slack's file host and the configured API's own
origin (a proxy or the sandbox). A file URL comes from an event payload, and following one anywhere else, or a
redirect to another origin, would hand the bot token to a stranger.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from dataclasses import replace
from urllib.parse import urljoin, urlsplit

import httpx
import structlog

from adapters.slack import PLATFORM
from adapters.slack.webapi import TokenSource
from bot.errors import InvalidInput, PermanentUpstreamError, TransientUpstreamError
from bot.events import FileRef
from bot.media.accept import too_big

log = structlog.get_logger(__name__)

Origin = tuple[str, str, int]  # scheme, host, port: where a token may be sent

SLACK_FILE_ORIGINS: frozenset[Origin] = frozenset({("https", "files.slack.com", 443)})
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Slack's private file URLs name the workspace: https://files.slack.com/files-pri/T0123-F0456/...
_WORKSPACE_IN_URL = re.compile(r"/files-pri/(T[A-Z0-9]+)-")
_MAX_REDIRECTS = 3


def origin_of(url: str) -> Origin | None:
    """The URL's origin with its effective port, or None when no token may ever go there (another scheme, no
    host, a bad port, or credentials in the URL, which httpx would send as well)."""
    parts = urlsplit(url)
    default_port = _DEFAULT_PORTS.get(parts.scheme)
    if default_port is None or not parts.hostname or parts.username is not None or parts.password is not None:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    return (parts.scheme, parts.hostname, default_port if port is None else port)


def _where(url: str) -> str:
    """Where a URL points, for the user: the host, and the port when it names one."""
    parts = urlsplit(url)
    host = parts.hostname or url
    try:
        return f"{host}:{parts.port}" if parts.port is not None else host
    except ValueError:
        return host


def workspace_of(url: str) -> str:
    """The workspace a file URL belongs to, so a multi-workspace bot sends that workspace's token ("" if unnamed)."""
    match = _WORKSPACE_IN_URL.search(urlsplit(url).path)
    return match.group(1) if match else ""


class SlackFileSource:
    platform = PLATFORM

    def __init__(self, tokens: TokenSource, api_url: str, *, timeout_s: float = 60.0) -> None:
        self._tokens = tokens
        self._origins = set(SLACK_FILE_ORIGINS)
        api = origin_of(api_url)
        if api is not None:
            self._origins.add(api)
        self._timeout = httpx.Timeout(timeout_s, connect=10.0)

    def allowed(self, url: str) -> bool:
        return origin_of(url) in self._origins

    async def download(self, file: FileRef, *, max_bytes: int) -> AsyncGenerator[bytes, None]:
        if file.size > max_bytes:
            raise too_big(file, max_bytes)
        url = file.url
        if not self.allowed(url):
            log.warning("refused a file from outside Slack's file hosts", file=file.file_id, to=_where(url))
            raise InvalidInput(f"I can only read files shared in Slack itself; “{file.name}” points to {_where(url)}.")
        token = await self._tokens(workspace_of(url))
        async with httpx.AsyncClient(timeout=self._timeout, follow_redirects=False) as client:
            for _ in range(_MAX_REDIRECTS + 1):
                request = client.build_request("GET", url, headers={"Authorization": f"Bearer {token}"})
                try:
                    response = await client.send(request, stream=True)
                except httpx.HTTPError as exc:
                    raise TransientUpstreamError(PLATFORM, f"file download: {type(exc).__name__}") from None
                try:
                    if response.is_redirect:
                        url = self._redirect(url, response, file)
                        continue
                    self._check(response, file)
                    seen = 0
                    async for chunk in response.aiter_bytes():
                        seen += len(chunk)
                        if seen > max_bytes:
                            raise too_big(replace(file, size=seen), max_bytes)
                        yield chunk
                    return
                finally:
                    await response.aclose()
            raise PermanentUpstreamError(
                PLATFORM, "file download: too many redirects", f"I couldn't download “{file.name}” from Slack."
            )

    def _redirect(self, url: str, response: httpx.Response, file: FileRef) -> str:
        """Where a redirect leads, if it stays on the origin that sent it: the token goes with every request, so a
        hop to any other origin (even another port on the same host) is refused, never followed."""
        location: str = response.headers.get("location", "")
        if not location:
            raise PermanentUpstreamError(
                PLATFORM,
                f"file download: HTTP {response.status_code} without a Location",
                f"I couldn't download “{file.name}” from Slack.",
            )
        target = urljoin(url, location)
        if origin_of(target) != origin_of(url):  # `url` passed the pins, so its origin is a real one
            log.warning("refused a file redirect off its origin", file=file.file_id, to=_where(target))
            raise InvalidInput(
                f"I can only read files shared in Slack itself; “{file.name}” redirects to {_where(target)}."
            )
        return target

    def _check(self, response: httpx.Response, file: FileRef) -> None:
        status = response.status_code
        if status == 429 or status >= 500:
            retry = response.headers.get("retry-after")
            raise TransientUpstreamError(
                PLATFORM, f"file download: HTTP {status}", retry_after_s=float(retry) if retry else None
            )
        if status != 200:
            raise PermanentUpstreamError(
                PLATFORM, f"file download: HTTP {status}", f"Slack would not give me “{file.name}” (HTTP {status})."
            )
        if response.headers.get("content-type", "").startswith("text/html") and not file.mime_type.startswith(
            "text/html"
        ):
            # Slack serves its sign-in page instead of the file when the token lacks files:read.
            raise PermanentUpstreamError(
                PLATFORM,
                "file download: got the sign-in page (missing files:read scope?)",
                f"I'm not allowed to read “{file.name}”; an administrator needs to grant the app files:read.",
            )
