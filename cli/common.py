"""What every `bot` command shares: settings read once, the event loop, the embedded services, the consoles and
the exit codes the README promises."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import traceback
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.markup import escape

from bot.config import Settings
from bot.errors import ConfigurationError, causes
from bot.logs import configure_logging

if TYPE_CHECKING:
    # Imported where used: `bot --help` and `bot settings` need none of SQLAlchemy, alembic, arq or Redis.
    from bot.runtime import Runtime
    from bot.services import Services

T = TypeVar("T")

# Piped into grep or a file, tables are not cut at 80 columns: a line holds its whole row.
out = Console(width=None if sys.stdout.isatty() else 1000)
wide = Console(width=180)  # benchmark tables are wider than a terminal default
err = Console(stderr=True)

EXIT_FAILED_TURN = 1
EXIT_REFUSED = 2
EXIT_INFRA = 3


def load_settings(verbose: bool = False) -> Settings:
    """The settings for this command, read once here and passed down; logging configured from them."""
    settings = Settings()
    configure_logging("DEBUG" if verbose else settings.log_level, json=settings.log_json)
    return settings


async def _stopped_by_sigterm(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` with SIGTERM doing what Ctrl-C does: cancel it, so every `async with` it is in unwinds (servers
    stop accepting and finish what they hold, runs are handed back, embedded services it started are stopped)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows' loop
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await coro
    finally:
        with contextlib.suppress(NotImplementedError, ValueError, RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)


SERVICES = (
    (("asyncpg", "sqlalchemy", "bot.db", "bot.services"), "Postgres", "DATABASE_URL"),
    (("redis", "arq", "jobs.queue"), "Redis", "REDIS_URL"),
)


def unreachable_service(exc: BaseException) -> str | None:
    """A sentence for a service this command could not reach (a closed port, an unknown host, a refused login),
    naming it and its setting; None when `exc` is not that (it is then a bug, and its traceback is wanted)."""
    chain = causes(exc)
    from redis.exceptions import ConnectionError as RedisConnectionError
    from sqlalchemy.exc import DBAPIError

    if not any(isinstance(e, OSError | RedisConnectionError | DBAPIError) for e in chain):
        return None
    modules = {
        str(frame.f_globals.get("__name__", "")) for e in chain for frame, _ in traceback.walk_tb(e.__traceback__)
    }
    root = chain[-1]
    reason = (root.strerror if isinstance(root, OSError) and root.strerror else str(root)).strip() or type(
        root
    ).__name__
    for prefixes, name, setting in SERVICES:
        if any(module.startswith(prefixes) for module in modules):
            return (
                f"Could not reach {name} ({setting}): {reason}. Check that it is running and that {setting} is "
                f"right, or leave {setting} empty to use the embedded one."
            )
    return None


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine on uvloop; a configuration problem exits 3 with its sentence, Ctrl-C quietly,
    SIGTERM after closing down (exit 0)."""
    try:
        # uvloop's event loop does the same I/O for less CPU, which is what a worker spends most on.
        try:
            import uvloop
        except ImportError:  # not available on Windows
            return asyncio.run(_stopped_by_sigterm(coro))
        return uvloop.run(_stopped_by_sigterm(coro))
    except asyncio.CancelledError:
        err.print("[dim]Stopped.[/dim]")
        raise typer.Exit(0) from None
    except ConfigurationError as exc:
        err.print(f"[red]Configuration problem:[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_INFRA) from None
    except KeyboardInterrupt:
        # The cleanup (worker, embedded services) ran as the main task was cancelled; just leave quietly.
        err.print("[dim]Interrupted.[/dim]")
        raise typer.Exit(130) from None
    except Exception as exc:  # last: only a service that could not be reached is said so, the rest is a bug
        sentence = unreachable_service(exc)
        if sentence is None:
            raise
        err.print(f"[red]{escape(sentence)}[/red]")
        raise typer.Exit(EXIT_INFRA) from None


@asynccontextmanager
async def ready_services(settings: Settings, *, counts_tokens: bool = False) -> AsyncIterator[Services]:
    """Postgres and Redis for this command: the configured ones, or embedded ones started (and stopped) here. A
    command that takes messages (`counts_tokens`) loads the model's token encoding meanwhile."""
    from bot.services import prepare_database, start_services

    if counts_tokens:
        from bot.tokens import warm

        warm(settings.openai_model)

    services = await asyncio.to_thread(start_services, settings)
    try:
        await prepare_database(services)
        yield services
    finally:
        await asyncio.to_thread(services.stop_started)


@asynccontextmanager
async def ready_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """`ready_services`, and the runtime on them with its wake-ups queued on arq."""
    from jobs.queue import open_runtime

    async with ready_services(settings, counts_tokens=True) as services, open_runtime(services.settings) as runtime:
        yield runtime


def mask_password(value: str) -> str:
    parts = urlsplit(value)
    if parts.password:
        return value.replace(f":{parts.password}@", ":***@", 1)
    return value
