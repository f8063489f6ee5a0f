"""The `bot` command line. Every entry point reads Settings once here and passes them down."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bot.config import Settings
from bot.errors import ConfigurationError, UserFacingError
from bot.logs import configure_logging
from bot.services import Services, prepare_database, start_services

T = TypeVar("T")

app = typer.Typer(
    help="threadbot: a chat bot for Slack, Discord and the console, on durable background jobs.\n\n"
    "With no DATABASE_URL / REDIS_URL it runs on embedded Postgres and Redis under DATA_DIR; with no "
    "OPENAI_API_KEY a local stand-in model answers. Settings come from the environment or a .env file.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema: migrate and inspect.", no_args_is_help=True)
services_app = typer.Typer(
    help="Embedded Postgres and Redis under DATA_DIR: start, stop, status.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
discord_app = typer.Typer(help="Discord: register slash commands.", no_args_is_help=True)
app.add_typer(services_app, name="services")
app.add_typer(discord_app, name="discord")

out = Console()
wide = Console(width=180)  # benchmark tables are wider than a terminal default
err = Console(stderr=True)

EXIT_FAILED_TURN = 1
EXIT_REFUSED = 2
EXIT_INFRA = 3


def _settings(verbose: bool = False) -> Settings:
    settings = Settings()
    configure_logging("DEBUG" if verbose else settings.log_level, json=settings.log_json)
    return settings


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        # uvloop's event loop does the same I/O for less CPU, which is what a worker spends most on.
        try:
            import uvloop
        except ImportError:  # not available on Windows
            return asyncio.run(coro)
        return uvloop.run(coro)
    except ConfigurationError as exc:
        err.print(f"[red]Configuration problem:[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_INFRA) from None
    except KeyboardInterrupt:
        # The cleanup (worker, embedded services) ran as the main task was cancelled; just leave quietly.
        err.print("[dim]Interrupted.[/dim]")
        raise typer.Exit(130) from None


@asynccontextmanager
async def _ready_services(settings: Settings) -> AsyncIterator[Services]:
    services = await asyncio.to_thread(start_services, settings)
    try:
        await prepare_database(services)
        yield services
    finally:
        await asyncio.to_thread(services.stop_started)


@app.command()
def ask(
    text: Annotated[str, typer.Argument(help="The message to send (may be empty with --file).")] = "",
    file: Annotated[
        list[Path] | None,
        typer.Option(
            "--file", "-f", help="Share a file with the message (audio, video, .txt/.md/.vtt/.srt); repeatable."
        ),
    ] = None,
    thread: Annotated[str, typer.Option("--thread", "-t", help="Thread to continue; a new one if omitted.")] = "",
    user: Annotated[str, typer.Option(help="User id to send as (default: your login name).")] = "",
    event_id: Annotated[str, typer.Option(help="Delivery id; repeat one to see deduplication.")] = "",
    worker: Annotated[bool, typer.Option(help="Run a worker in this process (off: rely on `bot worker`).")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the answer.")] = 300.0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show INFO logs on stderr.")] = False,
) -> None:
    """Send one message through the full pipeline (intake -> queue -> worker -> LLM) and print the reply.

    With --file, the file is stored, transcribed and digested by a chain (media-digest unless a chain claims
    the file's type), and the digest is printed; ask follow-up questions with --thread.

    Exit status: 0 answered, 1 the turn failed (the error is printed), 2 the message was refused, 3 a
    service problem or timeout. The thread id is printed on stderr so you can continue with --thread.
    """
    from adapters.console.inbound import new_thread_name

    settings = _settings(verbose)
    if not verbose:
        configure_logging("WARNING", json=settings.log_json)
    thread_name = thread or new_thread_name()
    code = _run(_ask(settings, text, thread_name, user or None, event_id or None, worker, timeout, tuple(file or ())))
    raise typer.Exit(code)


async def _ask(
    settings: Settings,
    text: str,
    thread: str,
    user: str | None,
    event_id: str | None,
    worker: bool,
    wait_s: float,
    paths: tuple[Path, ...] = (),
) -> int:
    from adapters.console.app import ConsoleSession, in_process_worker
    from adapters.console.files import file_ref
    from bot.runtime import open_runtime

    async with _ready_services(settings) as services, open_runtime(services.settings) as runtime:
        if services.settings.uses_stand_in_llm:
            err.print(
                "[dim]Note: replies come from the local stand-in model, not a real LLM (no OPENAI_API_KEY set). "
                "Set OPENAI_API_KEY to use a real one.[/dim]"
            )
        session = ConsoleSession(runtime, user=user)

        def show(chunk: str) -> None:
            sys.stdout.write(chunk)
            sys.stdout.flush()

        async def send(task: asyncio.Task[None] | None) -> int:
            try:
                files = tuple(file_ref(path) for path in paths)
                result = await session.send(
                    text, thread, event_id=event_id, on_text=show, timeout_s=wait_s, worker=task, files=files
                )
            except UserFacingError as exc:
                err.print(f"[yellow]Not sent:[/yellow] {escape(exc.user_message)}")
                return EXIT_REFUSED
            except (TimeoutError, RuntimeError) as exc:
                err.print(f"[red]{escape(str(exc))}[/red]")
                return EXIT_INFRA
            sys.stdout.write("\n")
            err.print(f"[dim]thread: {thread}[/dim]")
            return 0 if result.status == "completed" else EXIT_FAILED_TURN

        if not worker:
            return await send(None)
        async with in_process_worker(services.settings) as task:
            return await send(task)


@app.command()
def console(
    thread: Annotated[str, typer.Option("--thread", "-t", help="Thread to start in; a new one if omitted.")] = "",
    user: Annotated[str, typer.Option(help="User id to talk as (default: your login name).")] = "",
    worker: Annotated[bool, typer.Option(help="Run a worker in this process (off: rely on `bot worker`).")] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show INFO logs on stderr.")] = False,
) -> None:
    """Talk to the bot interactively. Each line is a message in the current thread; replies stream in.

    Commands: /new starts a new thread, /thread NAME switches, /help lists commands, /quit leaves.
    """
    from adapters.console.repl import run_console

    settings = _settings(verbose)
    if not verbose:
        configure_logging("WARNING", json=settings.log_json)
    raise typer.Exit(_run(run_console(settings, _ready_services, thread or None, user or None, worker)))


@app.command("worker")
def worker_command(
    max_jobs: Annotated[int, typer.Option(help="Jobs at once (default: WORKER_MAX_JOBS).")] = 0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show DEBUG logs.")] = False,
) -> None:
    """Run an arq worker: it runs the workflow runs (chat turns, reminders, follow-ups), sweeps for runs whose
    worker died or whose wake-up was lost, and competes to run the recurring-schedule scheduler. Run as many as
    you like."""
    settings = _settings(verbose)
    if max_jobs:
        settings = settings.model_copy(update={"worker_max_jobs": max_jobs})
    _run(_worker(settings))


async def _worker(settings: Settings) -> None:
    from jobs.worker import create_worker, settle_garbage_collector

    settle_garbage_collector()
    async with _ready_services(settings) as services:
        worker = create_worker(services.settings)
        try:
            await worker.async_run()
        except asyncio.CancelledError:
            pass  # arq's SIGINT/SIGTERM handler cancels the main task: the normal way to stop
        finally:
            await worker.close()


@app.command()
def bench(
    scenarios: Annotated[
        list[str] | None,
        typer.Argument(help="floor, ack, e2e, first-token, context, media (default: all)."),
    ] = None,
    quick: Annotated[bool, typer.Option(help="Fewer iterations, for a smoke run.")] = False,
    output: Annotated[Path | None, typer.Option(help="Where RESULTS.md and results/ go (default: bench/).")] = None,
) -> None:
    """Measure the pipeline against its floor: each scenario prints a table and a JSON line, and updates
    bench/RESULTS.md. Starts its own Postgres, Redis, stand-in LLM and worker on 127.0.0.1."""
    from bench.report import BENCH_DIR
    from bench.run import AVAILABLE, PENDING, run

    names = scenarios or ["floor", "ack", "e2e", "first-token", "context", "media"]
    unknown = [n for n in names if n not in AVAILABLE and n not in PENDING]
    if unknown:
        err.print(f"[red]Unknown scenario {', '.join(unknown)}.[/red] Known: {', '.join([*AVAILABLE, *PENDING])}.")
        raise typer.Exit(EXIT_REFUSED)
    configure_logging("WARNING")
    _run(run(names, quick=quick, console=wide, output=output or BENCH_DIR))


@app.command()
def serve(
    platform: Annotated[str, typer.Argument(help="slack or discord")],
    http: Annotated[
        bool | None,
        typer.Option(
            "--http/--socket",
            help="Slack: Events API over HTTP (needs SLACK_SIGNING_SECRET) or Socket Mode (needs SLACK_APP_TOKEN). "
            "Default: Socket Mode when SLACK_APP_TOKEN is set.",
        ),
    ] = None,
    port: Annotated[int, typer.Option(help="Slack HTTP mode: port for /slack/events.")] = 3000,
    host: Annotated[str, typer.Option(help="Slack HTTP mode: address to listen on.")] = "0.0.0.0",
    worker: Annotated[bool, typer.Option(help="Run a worker in this process (off: rely on `bot worker`).")] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show DEBUG logs.")] = False,
) -> None:
    """Run a platform adapter (Slack Events/Socket Mode, Discord gateway)."""
    if platform == "slack":
        _serve_slack(http, port, host, worker, verbose)
    elif platform == "discord":
        _serve_discord(worker, verbose)
    else:
        err.print(f"[red]Unknown platform {platform!r}.[/red] Choose slack or discord.")
        raise typer.Exit(EXIT_INFRA)


def _serve_slack(http: bool | None, port: int, host: str, worker: bool, verbose: bool) -> None:
    settings = _settings(verbose)
    use_http = http if http is not None else not settings.slack_app_token.get_secret_value()
    missing = [
        name
        for name, needed, value in (
            ("SLACK_BOT_TOKEN", not (use_http and settings.slack_oauth_enabled), settings.slack_bot_token),
            ("SLACK_SIGNING_SECRET", use_http, settings.slack_signing_secret),
            ("SLACK_APP_TOKEN", not use_http, settings.slack_app_token),
        )
        if needed and not value.get_secret_value()
    ]
    if missing:
        mode = "HTTP mode" if use_http else "Socket Mode"
        err.print(
            f"[red]Slack {mode} needs {', '.join(missing)}.[/red] Set it in the environment or .env; "
            "README.md, section Slack, says where each one is in your app's settings."
        )
        raise typer.Exit(EXIT_INFRA)
    _run(_serve_slack_async(settings, use_http, host, port, worker))


async def _serve_slack_async(settings: Settings, use_http: bool, host: str, port: int, worker: bool) -> None:
    from contextlib import AsyncExitStack

    from adapters.console.app import in_process_worker
    from adapters.slack.serve import EVENTS_PATH, serve_forever, serving_http, serving_socket_mode
    from bot.runtime import open_runtime

    async with AsyncExitStack() as stack:
        services = await stack.enter_async_context(_ready_services(settings))
        runtime = await stack.enter_async_context(open_runtime(services.settings))
        if worker:
            await stack.enter_async_context(in_process_worker(services.settings))
        if use_http:
            bound = await stack.enter_async_context(serving_http(runtime, host=host, port=port))
            err.print(f"Listening for Slack events on http://{host}:{bound}{EVENTS_PATH}")
        else:
            await stack.enter_async_context(serving_socket_mode(runtime))
            err.print("Connected to Slack over Socket Mode.")
        await serve_forever()


def _serve_discord(worker: bool, verbose: bool) -> None:
    settings = _settings(verbose)
    if not settings.discord_token.get_secret_value():
        err.print("[red]DISCORD_TOKEN is not set.[/red] Create the bot and its token as README.md (Discord) shows.")
        raise typer.Exit(EXIT_INFRA)
    _run(_discord_gateway(settings, worker))


async def _discord_gateway(settings: Settings, worker: bool) -> None:
    from adapters.console.app import in_process_worker
    from adapters.discord.app import serve as serve_discord

    async with _ready_services(settings) as services:
        if not worker:
            await serve_discord(services.settings)
            return
        # As for Slack: on the embedded default one command is enough; deployments run `bot worker` apart.
        async with in_process_worker(services.settings):
            await serve_discord(services.settings)


@discord_app.command("sync-commands")
def discord_sync_commands(
    guild: Annotated[
        str, typer.Option("--guild", help="Guild id: commands appear there at once (default: DISCORD_COMMAND_GUILD).")
    ] = "",
) -> None:
    """Register /ask, /chain, /transcribe and /remind with Discord. Without a guild they are global, which Discord
    takes up to an hour to show everywhere."""
    from adapters.discord.app import sync_commands

    settings = _settings()
    if not settings.discord_token.get_secret_value():
        err.print("[red]DISCORD_TOKEN is not set.[/red] Create the bot and its token as README.md (Discord) shows.")
        raise typer.Exit(EXIT_INFRA)
    scope = guild or settings.discord_command_guild
    if scope and not scope.isdigit():
        err.print(f"[red]--guild must be a guild id (digits), not {scope!r}.[/red]")
        raise typer.Exit(EXIT_REFUSED)
    names = _run(sync_commands(settings, scope))
    where = f"guild {scope}" if scope else "all guilds (global; may take up to an hour to appear)"
    out.print(f"Registered {', '.join('/' + n for n in names)} for {where}.")


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply migrations up to REVISION (default: the newest). Safe to run from several places at once."""
    settings = _settings()

    async def run() -> str | None:
        from bot.db import create_engine, upgrade

        async with _ready_services(settings) as services:
            engine = create_engine(services.settings.database_url, pool_size=1)
            try:
                return await upgrade(engine, revision)
            finally:
                await engine.dispose()

    out.print(f"Database schema at revision {_run(run())}.")


@db_app.command("current")
def db_current() -> None:
    """Print the database's schema revision."""
    settings = _settings()

    async def run() -> str | None:
        from bot.db import create_engine, current_revision

        services = await asyncio.to_thread(start_services, settings)
        engine = create_engine(services.settings.database_url, pool_size=1)
        try:
            return await current_revision(engine)
        finally:
            await engine.dispose()
            await asyncio.to_thread(services.stop_started)

    out.print(_run(run()) or "empty (run `bot db upgrade`)")


@services_app.command("start")
def services_start() -> None:
    """Start embedded Postgres and Redis and leave them running, so later commands start faster."""
    settings = _settings()
    services = start_services(settings)
    _run(prepare_database(services))
    postgres, redis = (_mask_password(url) for url in (services.settings.database_url, services.settings.redis_url))
    out.print(f"Postgres: {postgres}\nRedis:    {redis}")
    out.print("They keep running until `bot services stop`.")


@services_app.command("stop")
def services_stop() -> None:
    """Stop the embedded Postgres and Redis under DATA_DIR, whoever started them."""
    from bot.embedded import EmbeddedPostgres, EmbeddedRedis

    settings = _settings()
    stopped = [
        name
        for name, server in (
            ("Postgres", EmbeddedPostgres(settings.data_dir)),
            ("Redis", EmbeddedRedis(settings.data_dir)),
        )
        if server.stop()
    ]
    out.print(f"Stopped: {', '.join(stopped)}." if stopped else "Nothing was running.")


@services_app.command("status")
def services_status() -> None:
    """Say whether the embedded Postgres and Redis under DATA_DIR are running."""
    from bot.embedded import EmbeddedPostgres, EmbeddedRedis

    settings = _settings()
    postgres_pid = EmbeddedPostgres(settings.data_dir).postmaster_pid()
    redis_up = EmbeddedRedis(settings.data_dir).is_running()
    table = Table("service", "state")
    table.add_row("Postgres", f"running (pid {postgres_pid})" if postgres_pid else "stopped")
    table.add_row("Redis", "running" if redis_up else "stopped")
    out.print(table)


@app.command("settings")
def show_settings() -> None:
    """Show the effective settings, with secrets and URL passwords masked."""
    from pydantic import SecretStr

    settings = _settings()
    table = Table("setting", "value")
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            shown = "(set)" if value.get_secret_value() else "(empty)"
        elif isinstance(value, frozenset):
            shown = ", ".join(sorted(value)) or "(any)"
        else:
            shown = _mask_password(str(value))
        table.add_row(name.upper(), shown)
    out.print(table)


def _mask_password(value: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.password:
        return value.replace(f":{parts.password}@", ":***@", 1)
    return value


def main() -> None:
    app()


# Registered last: these command groups use the helpers above.
from bot.runs_cli import runs_app  # noqa: E402

app.add_typer(runs_app, name="runs")
from bot.media_cli import media_app  # noqa: E402

app.add_typer(media_app, name="media")
from bot.chains_cli import chains_app  # noqa: E402

app.add_typer(chains_app, name="chains")
