"""Server-sent events. A live fragment is re-rendered on the server every interval and sent only when its HTML
changed: the page then shows what Postgres says, with no notification to miss and nothing to replay after a
reconnect (the browser's EventSource reconnects by itself)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

STOPPING = web.AppKey("stopping", asyncio.Event)
HEARTBEAT_S = 15.0


async def open_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    return response


async def send_event(response: web.StreamResponse, event: str, data: str, event_id: str = "") -> None:
    lines = [f"id: {event_id}"] if event_id else []
    lines.append(f"event: {event}")
    lines += [f"data: {line}" for line in data.split("\n")]
    await response.write(("\n".join(lines) + "\n\n").encode())


async def send_json(response: web.StreamResponse, event: str, payload: dict[str, Any], event_id: str = "") -> None:
    await send_event(response, event, json.dumps(payload), event_id)


async def pause(request: web.Request, seconds: float) -> bool:
    """Sleep `seconds`; False when the server is stopping (the stream should end)."""
    stopping = request.app[STOPPING]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
    return not stopping.is_set()


async def fragment_stream(
    request: web.Request, render: Callable[[], Awaitable[str]], *, interval_s: float = 0.5
) -> web.StreamResponse:
    response = await open_stream(request)
    last: str | None = None
    quiet = 0.0
    try:
        while True:
            html = await render()
            if html != last:
                await send_event(response, "fragment", html)
                last, quiet = html, 0.0
            elif quiet >= HEARTBEAT_S:
                await response.write(b": still here\n\n")  # keeps proxies from closing an idle stream
                quiet = 0.0
            if not await pause(request, interval_s):
                break
            quiet += interval_s
    except (ConnectionResetError, asyncio.CancelledError):
        pass  # the browser left
    return response
