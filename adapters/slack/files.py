"""Downloading files users shared in Slack: `url_private_download` with the bot token, streamed, size-limited.

The token is sent only to Slack's file hosts (or the configured API host, for a proxy or the sandbox): a file URL
comes from an event payload, and following one anywhere else would hand the bot token to a stranger.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from dataclasses import replace
from urllib.parse import urljoin, urlsplit

import httpx

from adapters.slack import PLATFORM
from adapters.slack.webapi import TokenSource
from bot.errors import InvalidInput, PermanentUpstreamError, TransientUpstreamError
from bot.events import FileRef
from bot.media.accept import too_big

SLACK_FILE_HOSTS = frozenset({"files.slack.com"})
# Slack's private file URLs name the workspace: https://files.slack.com/files-pri/T0123-F0456/...
_WORKSPACE_IN_URL = re.compile(r"/files-pri/(T[A-Z0-9]+)-")
_MAX_REDIRECTS = 3


def workspace_of(url: str) -> str:
    """The workspace a file URL belongs to, so a multi-workspace bot sends that workspace's token ("" if unnamed)."""
    match = _WORKSPACE_IN_URL.search(urlsplit(url).path)
    return match.group(1) if match else ""


class SlackFileSource:
    platform = PLATFORM

    def __init__(self, tokens: TokenSource, api_url: str, *, timeout_s: float = 60.0) -> None:
        self._tokens = tokens
        api = urlsplit(api_url)
        self._hosts = {(host, "https") for host in SLACK_FILE_HOSTS}
        if api.hostname:
            self._hosts.add((api.hostname, api.scheme))
        self._timeout = httpx.Timeout(timeout_s, connect=10.0)

    def allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        return (parts.hostname or "", parts.scheme) in self._hosts

    async def download(self, file: FileRef, *, max_bytes: int) -> AsyncGenerator[bytes, None]:
        if file.size > max_bytes:
            raise too_big(file, max_bytes)
        url = file.url
        token = ""
        async with httpx.AsyncClient(timeout=self._timeout, follow_redirects=False) as client:
            for _ in range(_MAX_REDIRECTS + 1):
                if not self.allowed(url):
                    host = urlsplit(url).hostname or url
                    raise InvalidInput(f"I can only read files shared in Slack itself; “{file.name}” points to {host}.")
                token = token or await self._tokens(workspace_of(url))
                request = client.build_request("GET", url, headers={"Authorization": f"Bearer {token}"})
                try:
                    response = await client.send(request, stream=True)
                except httpx.HTTPError as exc:
                    raise TransientUpstreamError(PLATFORM, f"file download: {type(exc).__name__}") from None
                try:
                    if response.is_redirect:
                        # Each hop is checked again: Slack redirects within its own hosts only.
                        url = urljoin(url, response.headers.get("location", ""))
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
