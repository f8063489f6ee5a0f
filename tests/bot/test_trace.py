"""Stage marks: off by default, and when on, every process's marks land whole in one file, keyed by run."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from bot import trace


def test_marks_are_written_only_when_a_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "marks"
    trace.mark("persisted", 7)  # not configured: nothing happens, nothing is created
    trace.configure(path)
    try:
        trace.mark("persisted", 7)
        trace.mark("claimed")  # no run known to this task: not written
        token = trace.current_run.set(7)
        try:
            trace.mark("claimed")
        finally:
            trace.current_run.reset(token)
        trace.mark("persisted", 8)
    finally:
        trace.configure(None)
    trace.mark("finished", 7)
    marks = trace.read(path)
    assert set(marks) == {7, 8}
    assert list(marks[7]) == ["persisted", "claimed"]
    assert marks[7]["persisted"][0] <= marks[7]["claimed"][0]
    assert list(marks[8]) == ["persisted"]


async def test_marks_of_several_processes_share_one_file_and_one_clock(tmp_path: Path) -> None:
    path = tmp_path / "marks"
    script = "from bot import trace\nfor i in range(200):\n    trace.mark(f'step:{i}', RUN)\n"
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", script.replace("RUN", str(run)), env={**os.environ, trace.TRACE_ENV: str(path)}
        )
        for run in (1, 2)
    ]
    assert [await proc.wait() for proc in procs] == [0, 0]
    marks = trace.read(path)  # a torn or interleaved line would fail to parse here
    for run in (1, 2):
        times = [marks[run][f"step:{i}"][0] for i in range(200)]
        assert times == sorted(times)
