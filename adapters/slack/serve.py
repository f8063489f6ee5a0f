"""Running the Slack app: the Events API over HTTP (aiohttp, `/slack/events`) or Socket Mode."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp

from adapters.slack.app import create_app
from bot.errors import ConfigurationError
from bot.runtime import Runtime

EVENTS_PATH = "/slack/events"


def http_application(app: AsyncApp) -> web.Application:
    """Bolt's aiohttp application, with a health check for load balancers."""
    application = app.web_app(path=EVENTS_PATH)

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    application.router.add_get("/healthz", health)
    return application


@asynccontextmanager
async def serving_http(runtime: Runtime, *, host: str = "127.0.0.1", port: int = 3000) -> AsyncIterator[int]:
    """Serve Slack's HTTP events until the block exits; yields the port actually bound (port 0 picks one)."""
    runner = web.AppRunner(http_application(create_app(runtime)), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


@asynccontextmanager
async def serving_socket_mode(runtime: Runtime) -> AsyncIterator[AsyncSocketModeHandler]:
    """Connect to Slack over Socket Mode (apps.connections.open on SLACK_API_URL, then a websocket) until the block
    exits. As in HTTP mode, an envelope is acked once its message is stored and queued; one left unacked comes
    back from Slack."""
    app_token = runtime.settings.slack_app_token.get_secret_value()
    if not app_token:
        raise ConfigurationError("SLACK_APP_TOKEN is not set (an app-level token, xapp-..., with connections:write)")
    handler = AsyncSocketModeHandler(create_app(runtime, socket_mode=True), app_token)
    await handler.connect_async()  # type: ignore[no-untyped-call]
    try:
        yield handler
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]


async def serve_forever() -> None:
    await asyncio.Event().wait()
