"""Operating the services: `bot db`, `bot services` and `bot settings`."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.table import Table

from bot.config import Settings
from cli.common import load_settings, mask_password, out, ready_services, run_async

db_app = typer.Typer(help="Database schema: migrate and inspect.", no_args_is_help=True)
services_app = typer.Typer(
    help="Embedded Postgres and Redis under DATA_DIR: start, stop, status.", no_args_is_help=True
)


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply migrations up to REVISION (default: the newest). Safe to run from several places at once."""
    settings = load_settings()

    async def run() -> str | None:
        from bot.db import create_engine, upgrade

        async with ready_services(settings) as services:
            engine = create_engine(services.settings.database_url, pool_size=1)
            try:
                return await upgrade(engine, revision)
            finally:
                await engine.dispose()

    out.print(f"Database schema at revision {run_async(run())}.")


@db_app.command("current")
def db_current() -> None:
    """Print the database's schema revision."""
    settings = load_settings()

    async def run() -> str | None:
        from bot.db import create_engine, current_revision
        from bot.services import start_services

        services = await asyncio.to_thread(start_services, settings)
        engine = create_engine(services.settings.database_url, pool_size=1)
        try:
            return await current_revision(engine)
        finally:
            await engine.dispose()
            await asyncio.to_thread(services.stop_started)

    out.print(run_async(run()) or "empty (run `bot db upgrade`)")


@services_app.command("start")
def services_start() -> None:
    """Start embedded Postgres and Redis and leave them running, so later commands start faster."""
    from bot.services import prepare_database, start_services

    settings = load_settings()
    services = start_services(settings)
    run_async(prepare_database(services))
    postgres, redis = (mask_password(url) for url in (services.settings.database_url, services.settings.redis_url))
    out.print(f"Postgres: {postgres}\nRedis:    {redis}")
    out.print("They keep running until `bot services stop`.")


@services_app.command("stop")
def services_stop() -> None:
    """Stop the embedded Postgres and Redis under DATA_DIR, whoever started them."""
    from bot.embedded import EmbeddedPostgres, EmbeddedRedis

    settings = load_settings()
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

    settings = load_settings()
    postgres_pid = EmbeddedPostgres(settings.data_dir).postmaster_pid()
    redis_up = EmbeddedRedis(settings.data_dir).is_running()
    table = Table("service", "state")
    table.add_row("Postgres", f"running (pid {postgres_pid})" if postgres_pid else "stopped")
    table.add_row("Redis", "running" if redis_up else "stopped")
    out.print(table)


def show_settings() -> None:
    """Show the effective settings, with secrets and URL passwords masked."""
    from pydantic import SecretStr

    settings = load_settings()
    table = Table("setting", "value")
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            shown = "(set)" if value.get_secret_value() else "(empty)"
        elif isinstance(value, frozenset):
            shown = ", ".join(sorted(value)) or "(any)"
        else:
            shown = mask_password(str(value))
        table.add_row(name.upper(), shown)
    out.print(table)
