"""`bot bench` runs for real (a quick floor and context pass) and reports what it measured."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path


async def test_quick_bench_prints_tables_json_and_results_file(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", "bench", "floor", "context", "--quick", "--output", str(tmp_path),
        env=dict(os.environ), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 300)
    text = out.decode()
    assert proc.returncode == 0, err.decode()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert [line["scenario"] for line in lines] == ["floor", "context"]
    floor, context = lines
    assert floor["machine"]["cores"] == os.cpu_count()
    assert all(row["p50_ms"] > 0 for row in floor["rows"])
    assert [row["thread messages"] for row in context["rows"]] == ["10", "1,000", "10,000", "100,000"]
    results = (tmp_path / "RESULTS.md").read_text()
    assert "## floor" in results
    assert "## context" in results
    assert (tmp_path / "results" / "floor.json").exists()
