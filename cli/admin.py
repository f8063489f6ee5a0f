"""Operating the services: `bot db`, `bot services` and `bot settings`."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from bot.config import Settings
from cli.common import EXIT_INFRA, err, load_settings, mask_password, out, ready_services, run_async

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


def health(
    url: Annotated[str, typer.Option(help="Also GET this URL, which must answer 200 (an adapter's /healthz).")] = "",
) -> None:
    """Check that this process's Postgres (DATABASE_URL) and Redis (REDIS_URL) answer, and URL if given: exit 0
    when they do, 3 (with the reason) when one does not. For container health checks: it starts nothing."""
    settings = load_settings()
    missing = [name for name, value in (("DATABASE_URL", settings.database_url), ("REDIS_URL", settings.redis_url))
               if not value]  # fmt: skip
    if missing:
        err.print(f"[red]{' and '.join(missing)} not set:[/red] health checks a deployment's own services.")
        raise typer.Exit(EXIT_INFRA)

    async def run() -> None:
        import httpx
        from redis.asyncio import Redis
        from sqlalchemy import text

        from bot.db import create_engine

        engine = create_engine(settings.database_url, pool_size=1)
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        finally:
            await engine.dispose()
        redis = Redis.from_url(settings.redis_url, socket_connect_timeout=5, socket_timeout=5)
        try:
            await redis.ping()
        finally:
            await redis.aclose()
        if url:
            try:
                async with httpx.AsyncClient(timeout=5) as client:
                    status = (await client.get(url)).status_code
            except httpx.HTTPError as exc:
                err.print(f"[red]Could not reach {url}: {escape(str(exc) or type(exc).__name__)}.[/red]")
                raise typer.Exit(EXIT_INFRA) from None
            if status != 200:
                err.print(f"[red]{url} answered {status}.[/red]")
                raise typer.Exit(EXIT_INFRA)

    run_async(run())
    out.print("healthy")


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
