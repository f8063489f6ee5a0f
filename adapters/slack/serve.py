"""Running the Slack app: the Events API over HTTP (aiohttp, `/slack/events`) or Socket Mode."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import structlog
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest

from adapters.slack import signing
from adapters.slack.app import create_app
from bot.clock import Clock, SystemClock
from bot.errors import ConfigurationError
from bot.runtime import Runtime

log = structlog.get_logger(__name__)

EVENTS_PATH = "/slack/events"
# What Bolt's parsing raises for a body it cannot read (it parses in AsyncBoltRequest's constructor, which does no
# I/O, so none of these is a failure that a redelivery could get past).
_UNREADABLE = (ValueError, TypeError, LookupError, AttributeError, RecursionError)


def http_application(app: AsyncApp, signing_secret: str, clock: Clock | None = None) -> web.Application:
    """Slack's door over HTTP: signed events on EVENTS_PATH, the OAuth install and redirect pages if the app has
    them (browsers, unsigned), and a health check for load balancers."""
    application = web.Application()
    application.router.add_post(EVENTS_PATH, SignedEvents(app, signing_secret, clock or SystemClock()).handle)
    oauth = app.oauth_flow
    if oauth is not None:

        async def install(request: web.Request) -> web.Response:
            return await to_aiohttp_response(await oauth.handle_installation(await to_bolt_request(request)))

        async def redirect(request: web.Request) -> web.Response:
            return await to_aiohttp_response(await oauth.handle_callback(await to_bolt_request(request)))

        application.router.add_get(oauth.install_path, install)
        application.router.add_get(oauth.redirect_uri_path, redirect)

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    application.router.add_get("/healthz", health)
    return application


class SignedEvents:
    """POST EVENTS_PATH. The signature is checked on the raw bytes before Bolt sees the request: Bolt parses first
    and verifies after, so an unsigned body it could not read was a 500 with a traceback. Refused: a 401 and at most
    one log line per ten seconds. Signed but unreadable: acked with one warning, as Slack would resend it unchanged."""

    def __init__(self, app: AsyncApp, signing_secret: str, clock: Clock) -> None:
        if not signing_secret:
            raise ConfigurationError("SLACK_SIGNING_SECRET is not set; HTTP mode needs it to verify Slack's requests")
        self._app = app
        self._secret = signing_secret
        self._clock = clock
        self._refusals = signing.RefusalLog(clock)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        why = signing.refusal(
            self._secret,
            request.headers.get("X-Slack-Request-Timestamp"),
            request.headers.get("X-Slack-Signature"),
            body,
            now=time.time(),  # Slack signs by the wall clock, as Bolt checks: not the runtime's, which tests move
        )
        if why is not None:
            self._refusals.refused(why)
            return web.Response(status=401, text="invalid request signature")
        try:
            bolt_request = _bolt_request(request, body)
        except _UNREADABLE as exc:
            log.warning("slack request malformed; acked and dropped", reason=_unreadable(exc))
            return web.Response(status=200)
        return await to_aiohttp_response(await self._app.async_dispatch(bolt_request))


def _bolt_request(request: web.Request, body: bytes) -> AsyncBoltRequest:
    # Slack sends UTF-8 whatever the Content-Type's charset says; the signature was over these very bytes.
    headers: dict[str, str | Sequence[str]] = {name: request.headers.getall(name) for name in request.headers}
    return AsyncBoltRequest(body=body.decode("utf-8"), query=request.query_string, headers=headers)


def _unreadable(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "body is not UTF-8"
    if isinstance(exc, RecursionError):
        return "body is nested too deeply"
    if isinstance(exc, json.JSONDecodeError):
        return "body is not valid JSON"
    return f"body is not a Slack payload ({type(exc).__name__})"


@asynccontextmanager
async def serving_http(runtime: Runtime, *, host: str = "127.0.0.1", port: int = 3000) -> AsyncIterator[int]:
    """Serve Slack's HTTP events until the block exits; yields the port actually bound (port 0 picks one)."""
    secret = runtime.settings.slack_signing_secret.get_secret_value()
    application = http_application(create_app(runtime), secret, runtime.clock)
    runner = web.AppRunner(application, access_log=None, shutdown_timeout=2.0)
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
