"""`bot up` (everything a new user needs in one process: services, a worker, the web console and every platform
whose credentials are set) and `bot serve web` (the console alone)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bot.config import Settings
from cli.common import err, load_settings, out, ready_services, run_async

if TYPE_CHECKING:
    # Imported where used: `bot --help` loads none of SQLAlchemy, arq or Redis.
    from bot.runtime import Runtime

TOKEN_FILE = "web_admin_token"  # noqa: S105 (the name of the file, not a secret)


def login_token(settings: Settings) -> tuple[str, bool]:
    """WEB_ADMIN_TOKEN, or the one made on a first start and kept (0600) in DATA_DIR, so a restart keeps sessions.
    Returns it and whether it was made here (then the printed URL carries it)."""
    configured = settings.web_admin_token.get_secret_value()
    if configured:
        return configured, False
    from bot.datadir import make_private_dirs, write_private
    from webconsole.auth import new_token

    path = Path(settings.data_dir) / TOKEN_FILE
    if path.is_file():
        kept = path.read_text().strip()
        if kept:
            return kept, True
    token = new_token()
    write_private(make_private_dirs(path.parent) / path.name, token + "\n")
    return token, True


def announce(settings: Settings, token: str, generated: bool, port: int, host: str) -> None:
    from webconsole.app import console_url

    url = console_url(host, port)
    if generated:
        out.print(f"Web console: {url}/login?token={token}", soft_wrap=True, highlight=False)
    else:
        out.print(f"Web console: {url} (log in with WEB_ADMIN_TOKEN)", soft_wrap=True, highlight=False)


def up(
    port: Annotated[int, typer.Option(help="Web console port (default: WEB_PORT).")] = -1,
    host: Annotated[str, typer.Option(help="Web console address (default: WEB_HOST, 127.0.0.1).")] = "",
    slack_port: Annotated[int, typer.Option(help="Slack HTTP mode (SLACK_SIGNING_SECRET, no app token): port.")] = 3000,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show DEBUG logs.")] = False,
) -> None:
    """Start everything: Postgres and Redis (embedded unless DATABASE_URL / REDIS_URL are set), a worker, the web
    console (runs dashboard and a chat playground) and the Slack and Discord adapters whose credentials are set.
    Prints the console's URL with its login token; Ctrl-C or SIGTERM stops all of it."""
    settings = load_settings(verbose)
    run_async(_up(settings, host or settings.web_host, port if port >= 0 else settings.web_port, slack_port))


async def _up(settings: Settings, host: str, port: int, slack_port: int) -> None:
    from jobs.queue import open_runtime
    from jobs.worker import in_process_worker, settle_garbage_collector
    from webconsole.app import serving

    settle_garbage_collector()
    token, generated = login_token(settings)
    async with AsyncExitStack() as stack:
        services = await stack.enter_async_context(ready_services(settings))
        runtime = await stack.enter_async_context(open_runtime(services.settings))
        await stack.enter_async_context(in_process_worker(services.settings))
        bound = await stack.enter_async_context(serving(runtime, token, host=host, port=port))
        platforms, running = await _start_platforms(runtime, stack, slack_port)
        announce(settings, token, generated, bound, host)
        err.print(f"Answering on: {', '.join(['web', 'console', *platforms])}. Ctrl-C stops everything.")
        await _until_one_fails(running)


async def _start_platforms(
    runtime: Runtime, stack: AsyncExitStack, slack_port: int
) -> tuple[list[str], list[asyncio.Task[None]]]:
    """The adapters whose credentials are set, started on `stack` (stopped with it): their names, and the tasks
    of those that run until cancelled (Discord's gateway), whose end is an error."""
    settings = runtime.settings
    names: list[str] = []
    running: list[asyncio.Task[None]] = []
    if settings.slack_bot_token.get_secret_value() or settings.slack_oauth_enabled:
        from adapters.slack.serve import serving_http, serving_socket_mode

        if settings.slack_app_token.get_secret_value():
            await stack.enter_async_context(serving_socket_mode(runtime))
            names.append("slack (Socket Mode)")
        elif settings.slack_signing_secret.get_secret_value():
            bound = await stack.enter_async_context(serving_http(runtime, host=settings.web_host, port=slack_port))
            names.append(f"slack (HTTP on port {bound})")
        else:
            err.print(
                "[yellow]SLACK_BOT_TOKEN is set but neither SLACK_APP_TOKEN nor SLACK_SIGNING_SECRET: Slack is not "
                "started.[/yellow]"
            )
    if settings.discord_token.get_secret_value():
        from adapters.discord.app import serve as serve_discord

        running.append(await stack.enter_async_context(_adapter(serve_discord(runtime))))
        names.append("discord")
    return names, running


@asynccontextmanager
async def _adapter(job: Awaitable[None]) -> AsyncIterator[asyncio.Task[None]]:
    task: asyncio.Task[None] = asyncio.ensure_future(job)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _until_one_fails(tasks: list[asyncio.Task[None]]) -> None:
    """Until cancelled (Ctrl-C, SIGTERM), or until an adapter stops: its error then stops everything, said."""
    forever = asyncio.ensure_future(asyncio.Event().wait())
    try:
        done, _ = await asyncio.wait([forever, *tasks], return_when=asyncio.FIRST_COMPLETED)
    finally:
        forever.cancel()
    for task in done:
        task.result()  # raises the adapter's error


def serve_web(settings: Settings, host: str, port: int, worker: bool) -> None:
    run_async(_serve_web(settings, host, port, worker))


async def _serve_web(settings: Settings, host: str, port: int, worker: bool) -> None:
    from jobs.queue import open_runtime
    from jobs.worker import in_process_worker
    from webconsole.app import serving

    token, generated = login_token(settings)
    async with AsyncExitStack() as stack:
        services = await stack.enter_async_context(ready_services(settings))
        runtime = await stack.enter_async_context(open_runtime(services.settings))
        if worker:
            await stack.enter_async_context(in_process_worker(services.settings))
        bound = await stack.enter_async_context(serving(runtime, token, host=host, port=port))
        announce(settings, token, generated, bound, host)
        await asyncio.Event().wait()


@asynccontextmanager
async def health_endpoints(settings: Settings) -> AsyncIterator[int | None]:
    """/healthz, /readyz and /metrics on WORKER_HEALTH_PORT for a process without the console; None if unset."""
    if not settings.worker_health_port:
        yield None
        return
    from jobs.queue import open_runtime
    from webconsole.health import serving_health

    async with (
        open_runtime(settings) as runtime,
        serving_health(runtime, host=settings.web_host, port=settings.worker_health_port) as bound,
    ):
        err.print(f"Health and metrics on http://{settings.web_host}:{bound}/healthz, /readyz, /metrics")
        yield bound
