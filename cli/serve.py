"""Long-running commands: `bot worker`, `bot serve slack|discord`, and registering Discord's slash commands."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from bot.config import Settings
from cli.common import EXIT_INFRA, EXIT_REFUSED, err, load_settings, out, ready_services, run_async

SLACK_HTTP_PORT = 3000  # `bot serve slack --http` without --port

discord_app = typer.Typer(help="Discord: register slash commands.", no_args_is_help=True)


def worker_command(
    max_jobs: Annotated[int, typer.Option(help="Jobs at once (default: WORKER_MAX_JOBS).")] = 0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show DEBUG logs.")] = False,
) -> None:
    """Run an arq worker: it runs the workflow runs (chat turns, reminders, follow-ups), sweeps for runs whose
    worker died or whose wake-up was lost, and competes to run the recurring-schedule scheduler. Run as many as
    you like."""
    settings = load_settings(verbose)
    if max_jobs:
        settings = settings.model_copy(update={"worker_max_jobs": max_jobs})
    run_async(_worker(settings))


async def _worker(settings: Settings) -> None:
    from jobs.worker import create_worker, settle_garbage_collector

    settle_garbage_collector()
    from cli.up import health_endpoints

    async with ready_services(settings, counts_tokens=True) as services, health_endpoints(services.settings):
        worker = create_worker(services.settings)
        try:
            await worker.async_run()
        except asyncio.CancelledError:
            pass  # arq's SIGINT/SIGTERM handler cancels the main task: the normal way to stop
        finally:
            await worker.close()


def serve(
    platform: Annotated[str, typer.Argument(help="slack, discord or web (the web console alone)")],
    http: Annotated[
        bool | None,
        typer.Option(
            "--http/--socket",
            help="Slack: Events API over HTTP (needs SLACK_SIGNING_SECRET) or Socket Mode (needs SLACK_APP_TOKEN). "
            "Default: Socket Mode when SLACK_APP_TOKEN is set.",
        ),
    ] = None,
    port: Annotated[
        int,
        typer.Option(
            help=f"Slack HTTP mode: port for /slack/events ({SLACK_HTTP_PORT}); web: the console's (WEB_PORT)."
        ),
    ] = -1,
    host: Annotated[
        str, typer.Option(help="Slack HTTP mode: address to listen on (0.0.0.0); web: the console's (WEB_HOST).")
    ] = "",
    worker: Annotated[
        bool | None,
        typer.Option(
            "--worker/--no-worker",
            help="Run a worker in this process (off: rely on `bot worker`). Default: on for slack and discord, "
            "off for web.",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show DEBUG logs.")] = False,
) -> None:
    """Run a platform adapter (Slack Events/Socket Mode, Discord gateway), or the web console alone."""
    if platform == "slack":
        _serve_slack(http, port if port >= 0 else SLACK_HTTP_PORT, host or "0.0.0.0", worker is not False, verbose)
    elif platform == "discord":
        _serve_discord(worker is not False, verbose)
    elif platform == "web":
        from cli.up import serve_web

        settings = load_settings(verbose)
        serve_web(settings, host or settings.web_host, port if port >= 0 else settings.web_port, bool(worker))
    else:
        err.print(f"[red]Unknown platform {platform!r}.[/red] Choose slack, discord or web.")
        raise typer.Exit(EXIT_INFRA)


def _serve_slack(http: bool | None, port: int, host: str, worker: bool, verbose: bool) -> None:
    settings = load_settings(verbose)
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
    run_async(_serve_slack_async(settings, use_http, host, port, worker))


async def _serve_slack_async(settings: Settings, use_http: bool, host: str, port: int, worker: bool) -> None:
    from contextlib import AsyncExitStack

    from adapters.slack.serve import EVENTS_PATH, serve_forever, serving_http, serving_socket_mode
    from jobs.queue import open_runtime
    from jobs.worker import in_process_worker, settle_garbage_collector

    settle_garbage_collector()

    from cli.up import health_endpoints

    async with AsyncExitStack() as stack:
        services = await stack.enter_async_context(ready_services(settings, counts_tokens=True))
        runtime = await stack.enter_async_context(open_runtime(services.settings))
        await stack.enter_async_context(health_endpoints(services.settings))
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
    settings = load_settings(verbose)
    if not settings.discord_token.get_secret_value():
        err.print("[red]DISCORD_TOKEN is not set.[/red] Create the bot and its token as README.md (Discord) shows.")
        raise typer.Exit(EXIT_INFRA)
    run_async(_discord_gateway(settings, worker))


async def _discord_gateway(settings: Settings, worker: bool) -> None:
    from adapters.discord.app import serve as serve_discord
    from jobs.queue import open_runtime
    from jobs.worker import in_process_worker, settle_garbage_collector

    settle_garbage_collector()

    from cli.up import health_endpoints

    async with (
        ready_services(settings, counts_tokens=True) as services,
        open_runtime(services.settings) as runtime,
        health_endpoints(services.settings),
    ):
        if not worker:
            await serve_discord(runtime)
            return
        # As for Slack: on the embedded default one command is enough; deployments run `bot worker` apart.
        async with in_process_worker(services.settings):
            await serve_discord(runtime)


@discord_app.command("sync-commands")
def discord_sync_commands(
    guild: Annotated[
        str, typer.Option("--guild", help="Guild id: commands appear there at once (default: DISCORD_COMMAND_GUILD).")
    ] = "",
) -> None:
    """Register /ask, /chain, /transcribe and /remind with Discord. Without a guild they are global, which Discord
    takes up to an hour to show everywhere."""
    from adapters.discord.app import sync_commands

    settings = load_settings()
    if not settings.discord_token.get_secret_value():
        err.print("[red]DISCORD_TOKEN is not set.[/red] Create the bot and its token as README.md (Discord) shows.")
        raise typer.Exit(EXIT_INFRA)
    scope = guild or settings.discord_command_guild
    if scope and not scope.isdigit():
        err.print(f"[red]--guild must be a guild id (digits), not {scope!r}.[/red]")
        raise typer.Exit(EXIT_REFUSED)
    names = run_async(sync_commands(settings, scope))
    where = f"guild {scope}" if scope else "all guilds (global; may take up to an hour to appear)"
    out.print(f"Registered {', '.join(names)} for {where}.")
