"""Downloading what users attach on Discord (`bot.ports.FileSource`): only from Discord's CDN hosts or the
configured API host, streamed in chunks, and never more than the size limit."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

import aiohttp
import structlog

from bot.config import Settings
from bot.errors import InvalidInput, PermanentUpstreamError, TransientUpstreamError
from bot.events import FileRef
from bot.media.accept import too_big

log = structlog.get_logger(__name__)

PLATFORM = "discord"
CDN_HOSTS = frozenset({"cdn.discordapp.com", "media.discordapp.net"})
CHUNK_BYTES = 256 * 1024


class DiscordFiles:
    """Attachment URLs are signed by Discord and need no bot token, so none is sent: a URL that slipped past the
    host check could then not leak it."""

    platform = PLATFORM

    def __init__(self, settings: Settings, *, timeout_s: float = 300.0) -> None:
        api = urlsplit(settings.discord_api_base)
        self._api_origin = (api.scheme, api.netloc)
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, sock_read=60)
        self._session: aiohttp.ClientSession | None = None

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

    def is_allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        if parts.scheme == "https" and parts.hostname in CDN_HOSTS and parts.port in (None, 443):
            return True
        return (parts.scheme, parts.netloc) == self._api_origin

    async def download(self, file: FileRef, *, max_bytes: int) -> AsyncGenerator[bytes, None]:
        if not self.is_allowed(file.url):
            log.warning("refused a file from outside Discord's hosts", file=file.file_id)
            raise InvalidInput(f"I only download files from Discord itself, and `{file.name}` is somewhere else.")
        if file.size > max_bytes:
            raise too_big(file, max_bytes)
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            # No redirects: a redirect could lead off Discord's hosts.
            async with self._session.get(file.url, allow_redirects=False) as response:
                _raise_for_status(file, response.status)
                declared = response.content_length
                if declared is not None and declared > max_bytes:
                    raise too_big(FileRef(file.file_id, file.name, file.mime_type, declared, file.url), max_bytes)
                received = 0
                async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                    received += len(chunk)
                    if received > max_bytes:
                        raise too_big(FileRef(file.file_id, file.name, file.mime_type, received, file.url), max_bytes)
                    yield chunk
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as exc:
            raise TransientUpstreamError("discord", f"downloading {file.file_id}: {type(exc).__name__}") from exc


def _raise_for_status(file: FileRef, status: int) -> None:
    if status == 200:
        return
    detail = f"downloading {file.file_id}: HTTP {status}"
    if status == 429 or status >= 500:
        raise TransientUpstreamError("discord", detail)
    if status in (403, 404, 410):
        # Discord's signed attachment links expire after about a day.
        raise PermanentUpstreamError(
            "discord",
            detail,
            f"I couldn't fetch `{file.name}`: its link has expired or it was deleted. Share it again.",
        )
    raise PermanentUpstreamError("discord", detail, f"I couldn't fetch `{file.name}` from Discord (HTTP {status}).")
