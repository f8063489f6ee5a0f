"""`/healthz` (the process answers), `/readyz` (it can reach Postgres and Redis) and `/metrics`, for the web
console and, on WORKER_HEALTH_PORT, for `bot worker`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web
from sqlalchemy import text

from bot.runtime import Runtime
from webconsole.metrics import metrics_text

RUNTIME = web.AppKey("runtime", Runtime)
READY_TIMEOUT_S = 2.0


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    checks: dict[str, str] = {}

    async def postgres() -> None:
        async with runtime.autocommit.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def redis() -> None:
        await runtime.redis.ping()

    for name, check in (("postgres", postgres), ("redis", redis)):
        try:
            await asyncio.wait_for(check(), READY_TIMEOUT_S)
            checks[name] = "ok"
        except Exception as exc:  # noqa: BLE001 (any failure means not ready; the reason is the answer)
            checks[name] = f"{type(exc).__name__}: {exc}"[:300]
    ready = all(value == "ok" for value in checks.values())
    return web.json_response({"status": "ready" if ready else "not ready", **checks}, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    body = await metrics_text(request.app[RUNTIME])
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


def add_health_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)


@asynccontextmanager
async def serving_health(runtime: Runtime, *, host: str, port: int) -> AsyncIterator[int]:
    """The three endpoints alone (a worker's), until the block exits; yields the bound port."""
    app = web.Application()
    app[RUNTIME] = runtime
    add_health_routes(app)
    async with serving_app(app, host=host, port=port) as bound:
        yield bound


@asynccontextmanager
async def serving_app(app: web.Application, *, host: str, port: int) -> AsyncIterator[int]:
    """Serve `app` until the block exits; yields the port bound (port 0 picks a free one). Open event streams are
    ended by the app's own on_shutdown, so stopping takes no longer than the short timeout."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()
