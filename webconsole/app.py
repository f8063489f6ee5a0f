"""The console's aiohttp application: pages (Jinja2, server-rendered), the playground, live streams, health and
metrics, all behind one login (see `auth`). `serving` runs it until its block exits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.runtime import Runtime
from webconsole import pages, playground
from webconsole.auth import ACCESS_KEY, Access, require_login
from webconsole.health import RUNTIME, add_health_routes, serving_app
from webconsole.live import STOPPING
from webconsole.views import TEMPLATES, template_environment

HERE = Path(__file__).parent


@web.middleware
async def security_headers(request: web.Request, handler: Any) -> web.StreamResponse:
    response: web.StreamResponse = await handler(request)
    # Every script and style is served by the bot itself: nothing else may run on these pages.
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response


def create_app(runtime: Runtime, token: str) -> web.Application:
    app = web.Application(middlewares=[security_headers, require_login], client_max_size=1024**2)
    app[RUNTIME] = runtime
    app[ACCESS_KEY] = Access(token)
    app[TEMPLATES] = template_environment()
    app[STOPPING] = asyncio.Event()

    async def stop_streams(app: web.Application) -> None:
        app[STOPPING].set()

    app.on_shutdown.append(stop_streams)
    add_health_routes(app)
    pages.add_routes(app)
    playground.add_routes(app)
    app.router.add_static("/static/", HERE / "static", append_version=True)
    return app


@asynccontextmanager
async def serving(runtime: Runtime, token: str, *, host: str, port: int) -> AsyncIterator[int]:
    """The console on `host:port` until the block exits; yields the port bound (port 0 picks a free one)."""
    async with serving_app(create_app(runtime, token), host=host, port=port) as bound:
        yield bound


def console_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
    return f"http://{'[' + shown + ']' if ':' in shown else shown}:{port}"
