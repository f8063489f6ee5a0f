"""Benchmark reporting: a table on the terminal, one JSON line, and bench/RESULTS.md with the latest of each
scenario, stamped with the machine and the git commit."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

BENCH_DIR = Path(__file__).parent


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary_ms(values_s: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    return {
        "p50_ms": round(percentile(ms, 50), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "max_ms": round(max(ms), 3) if ms else float("nan"),
        "mean_ms": round(statistics.fmean(ms), 3) if ms else float("nan"),
        "n": len(ms),
    }


def machine() -> dict[str, Any]:
    memory_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kb = int(line.split()[1])
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=BENCH_DIR, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "commit": commit,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


@dataclass
class Result:
    scenario: str
    rows: list[dict[str, Any]]
    targets: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def show(self, console: Console, output: Path = BENCH_DIR) -> None:
        table = Table(title=f"bench: {self.scenario}")
        columns = list(dict.fromkeys(key for row in self.rows for key in row))
        for column in columns:
            table.add_column(column)
        for row in self.rows:
            table.add_row(*(str(row.get(c, "")) for c in columns))
        console.print(table)
        for line in self.targets:
            console.print(f"  target: {line}")
        for line in self.notes:
            console.print(f"  note: {line}")
        payload = {"scenario": self.scenario, "machine": machine(), "rows": self.rows, "targets": self.targets}
        print(json.dumps(payload), flush=True)
        save(self.scenario, payload, self, output)


def save(scenario: str, payload: dict[str, Any], result: Result, output: Path) -> None:
    """Keep the run as results/SCENARIO.json (ignored by git) and as its section of RESULTS.md (committed)."""
    (output / "results").mkdir(parents=True, exist_ok=True)
    (output / "results" / f"{scenario}.json").write_text(json.dumps(payload, indent=2) + "\n")
    results_md = output / "RESULTS.md"
    sections = _read_sections(results_md)
    lines = [f"## {scenario}", "", f"Machine: {_machine_line(payload['machine'])}", ""]
    columns = list(dict.fromkeys(key for row in result.rows for key in row))
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + " --- |" * len(columns))
    for row in result.rows:
        lines.append("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")
    lines.extend(["", *[f"- target: {t}" for t in result.targets], *[f"- note: {n}" for n in result.notes]])
    sections[scenario] = "\n".join(lines).rstrip() + "\n"
    header = (
        "# Benchmark results\n\nThe latest run of each scenario (`uv run bot bench SCENARIO`), written by the runs.\n"
    )
    order = ["floor", "ack", "e2e", "stages", "slack", "first-token", "context", "media"]
    body = "\n".join(sections[k] for k in sorted(sections, key=lambda k: order.index(k) if k in order else 99))
    results_md.write_text(header + "\n" + body)


def _machine_line(m: dict[str, Any]) -> str:
    return f"{m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}, commit {m['commit']}, {m['at']}"


def _read_sections(results_md: Path) -> dict[str, str]:
    if not results_md.exists():
        return {}
    sections: dict[str, str] = {}
    current: str | None = None
    for line in results_md.read_text().splitlines(keepends=True):
        if line.startswith("## "):
            current = line[3:].strip()
            sections[current] = ""
        if current is not None:
            sections[current] += line
    # Sections are joined by one blank line when written; strip it here so rewrites do not pile them up.
    return {name: text.rstrip() + "\n" for name, text in sections.items()}
