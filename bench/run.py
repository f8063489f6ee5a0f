"""`bot bench [SCENARIO]`: run benchmark scenarios and print their tables and JSON lines."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from rich.console import Console

from bench import ack, context, e2e, floor, media, slack_path, stages
from bench.report import BENCH_DIR, Result

AVAILABLE: dict[str, Callable[[bool], Awaitable[Result]]] = {
    "floor": lambda quick: floor.run(),
    "ack": ack.run,
    "e2e": e2e.run_e2e,
    "first-token": e2e.run_first_token,
    "stages": stages.run,
    "slack": slack_path.run,
    "context": lambda quick: context.run(repeats=50 if quick else 300),
    "media": media.run,
}
# Scenarios whose subject is not built yet; `bot bench` says so instead of pretending.
PENDING: dict[str, str] = {}


async def run(names: list[str], *, quick: bool, console: Console, output: Path = BENCH_DIR) -> list[Result]:
    results = []
    for name in names:
        if name in PENDING:
            console.print(f"[yellow]bench {name}: not measured yet: {PENDING[name]}[/yellow]")
            continue
        console.print(f"[bold]bench {name}[/bold] ...")
        result = await AVAILABLE[name](quick)
        result.show(console, output)
        results.append(result)
    return results
