"""The web console served for real on a free local port, over the test's Postgres, Redis and worker."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bot.runtime import Runtime
from webconsole.app import serving

TOKEN = "test-login-token-0123456789"


@pytest.fixture
async def console(runtime: Runtime, worker: asyncio.Task[None]) -> AsyncIterator[str]:
    async with serving(runtime, TOKEN, host="127.0.0.1", port=0) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
async def anonymous() -> AsyncIterator[aiohttp.ClientSession]:
    # unsafe: keep cookies for 127.0.0.1 (aiohttp's jar drops cookies of IP hosts otherwise).
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


@pytest.fixture
async def client(console: str) -> AsyncIterator[aiohttp.ClientSession]:
    """A browser-like client logged in through the URL `bot up` prints."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.get(f"{console}/login?token={TOKEN}", allow_redirects=False) as response:
            assert response.status == 303
        yield session


async def csrf_of(session: aiohttp.ClientSession, url: str) -> str:
    """The CSRF token a page carries in its forms."""
    async with session.get(url) as response:
        html = await response.text()
    found = re.search(r'name="csrf" value="([^"]+)"', html) or re.search(r'data-csrf="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


async def say(session: aiohttp.ClientSession, console: str, thread: str, text: str) -> dict[str, Any]:
    """Type `text` in the playground's thread, as the page does (with the CSRF token); the server's JSON answer."""
    csrf = await csrf_of(session, f"{console}/playground?thread={thread}")
    async with session.post(
        console + "/playground/send", data={"thread": thread, "text": text}, headers={"X-CSRF-Token": csrf}
    ) as response:
        assert response.status in (200, 422), await response.text()
        answer: dict[str, Any] = await response.json()
        return answer
