"""`bot bench`: the benchmark scenarios (see `bench/`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bot.logs import configure_logging
from cli.common import EXIT_REFUSED, err, run_async, wide


def bench(
    scenarios: Annotated[
        list[str] | None,
        typer.Argument(help="floor, ack, e2e, stages, slack, first-token, context, media (default: all)."),
    ] = None,
    quick: Annotated[bool, typer.Option(help="Fewer iterations, for a smoke run.")] = False,
    output: Annotated[Path | None, typer.Option(help="Where RESULTS.md and results/ go (default: bench/).")] = None,
) -> None:
    """Measure the pipeline against its floor: each scenario prints a table and a JSON line, and updates
    bench/RESULTS.md. Starts its own Postgres, Redis, stand-in LLM and worker on 127.0.0.1."""
    from bench.report import BENCH_DIR
    from bench.run import AVAILABLE, PENDING, run

    names = scenarios or ["floor", "ack", "e2e", "stages", "slack", "first-token", "context", "media"]
    unknown = [n for n in names if n not in AVAILABLE and n not in PENDING]
    if unknown:
        err.print(f"[red]Unknown scenario {', '.join(unknown)}.[/red] Known: {', '.join([*AVAILABLE, *PENDING])}.")
        raise typer.Exit(EXIT_REFUSED)
    configure_logging("WARNING")
    run_async(run(names, quick=quick, console=wide, output=output or BENCH_DIR))
