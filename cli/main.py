"""The `bot` command line. Every entry point reads Settings once here and passes them down."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from cli import admin, benchmarks, chat, serve, up
from cli.chains import chains_app
from cli.index import index_app
from cli.mail import mail_app
from cli.media import media_app
from cli.runs import runs_app, usage_command

app = typer.Typer(
    help="threadbot: a chat bot for Slack, Discord and the console, on durable background jobs.\n\n"
    "With no DATABASE_URL / REDIS_URL it runs on embedded Postgres and Redis under DATA_DIR; with no "
    "OPENAI_API_KEY a local stand-in model answers. Settings come from the environment or a .env file.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(asked: bool) -> None:
    if asked:
        try:
            typer.echo(f"threadbot {version('threadbot')}")
        except PackageNotFoundError:  # run from a checkout that was never installed
            typer.echo("threadbot (not installed: version unknown)")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """threadbot: a chat bot for Slack, Discord and the console, on durable background jobs."""


app.command()(up.up)
app.command()(chat.ask)
app.command()(chat.console)
app.command("worker")(serve.worker_command)
app.command()(benchmarks.bench)
app.command()(serve.serve)
app.command("settings")(admin.show_settings)
app.command("health")(admin.health)
app.add_typer(admin.db_app, name="db")
app.add_typer(admin.services_app, name="services")
app.add_typer(serve.discord_app, name="discord")
app.add_typer(runs_app, name="runs")
app.command("usage")(usage_command)
app.add_typer(media_app, name="media")
app.add_typer(mail_app, name="mail")
app.add_typer(chains_app, name="chains")
app.add_typer(index_app, name="index")


def main() -> None:
    app()
