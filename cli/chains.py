"""`bot chains`: the chains the bot knows (list) and checking chain files before a worker loads them (check)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

chains_app = typer.Typer(
    help="Prompt chains: list the chains the bot knows, check chain files (YAML) for mistakes.", no_args_is_help=True
)

EXIT_PROBLEMS = 1


@chains_app.command("list")
def list_command() -> None:
    """List the shipped chains and CHAINS_DIR's (a chain of yours replaces a shipped one of the same name)."""
    from bot.chains.library import display, load_sources
    from cli.common import err, load_settings, out

    settings = load_settings()
    library, problems = load_sources([settings.chains_dir] if settings.chains_dir is not None else [])
    # Lines rather than a table: descriptions are sentences, which a table squeezes into a narrow column.
    for entry in library.entries():
        chain = entry.chain
        origin = "shipped" if entry.origin == "shipped" else display(entry.path)
        if entry.replaces is not None:
            origin += ", replaces the shipped one"
        # soft_wrap: the terminal wraps long lines, so they stay whole for grep and copy-paste.
        version = escape(str(chain.version))
        out.print(f"[bold]{chain.name}[/bold] (version {version}) — {escape(origin)}", soft_wrap=True)
        out.print(f"  {escape(chain.description)}", soft_wrap=True)
        how = [f"/chain run {chain.name}"] + [f"/chain run {alias}" for alias in chain.triggers.commands]
        details = [" | ".join(how)]
        if chain.triggers.file_types:
            details.append("runs on " + ", ".join(chain.triggers.file_types) + " files")
        if chain.needs:
            details.append("needs " + ", ".join(chain.needs))
        out.print(f"  [dim]{escape('; '.join(details))}[/dim]", soft_wrap=True)
    if not len(library):
        out.print("No chains.")
    if problems:
        _print_problems(err, problems)
        raise typer.Exit(EXIT_PROBLEMS)


@chains_app.command("check")
def check_command(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Chain files or folders of them. Default: CHAINS_DIR (and the shipped chains)."),
    ] = None,
) -> None:
    """Check chain files as a worker would load them: every problem with its file, step, field and line. Exits 1
    when there is any."""
    from bot.chains.library import load_sources
    from cli.common import err, load_settings, out

    if paths:
        library, problems = load_sources(paths)
        checked = sum(1 for entry in library.entries() if entry.origin == "yours")
    else:
        settings = load_settings()
        library, problems = load_sources([settings.chains_dir] if settings.chains_dir is not None else [])
        checked = len(library)
    if problems:
        _print_problems(err, problems)
        raise typer.Exit(EXIT_PROBLEMS)
    out.print(f"{checked} chain{'s' if checked != 1 else ''} OK")


def _print_problems(console: Console, problems: list[str]) -> None:
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    console.print(f"[red]{count} in chain files:[/red]")
    for problem in problems:
        console.print(f"  {escape(problem)}", soft_wrap=True)
