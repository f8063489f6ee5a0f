"""The benchmark's CPU split by process: a busy worker process is charged to the worker, by the item."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from bench.cpu import CpuMeter, per_item_ms

BURN = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass\n"


async def test_a_busy_worker_is_charged_its_cpu_per_item(tmp_path: Path) -> None:
    # Waits for a line, burns 0.4 s of CPU, says so, then waits for the end of its input: alive when measured.
    script = "import sys\nsys.stdin.readline()\n" + BURN + "print('burnt', flush=True)\nsys.stdin.read()\n"
    busy = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    assert busy.stdin is not None
    assert busy.stdout is not None
    meter = CpuMeter.of_system(tmp_path, [busy.pid])  # no Postgres or Redis under tmp_path: not measured
    before = meter.read()
    busy.stdin.write(b"go\n")
    await busy.stdin.drain()
    assert await asyncio.wait_for(busy.stdout.readline(), 30) == b"burnt\n"
    after = meter.read()
    busy.stdin.close()
    await busy.wait()
    assert set(after) == {"worker", "stand-in LLM", "intake + load generator"}
    per_reply = per_item_ms(before, after, 4)
    assert 80 <= per_reply["worker"] <= 130, per_reply  # 400 ms over 4 items
    assert per_reply["intake + load generator"] < 50
