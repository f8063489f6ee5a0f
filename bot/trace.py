"""Stage marks of a turn, for the per-stage table of `bot bench e2e`: where the time between an event and its reply
goes (intake, wake-up, claim, context, model, first post, edits, store).

Off unless BOT_TRACE_FILE names a file: the benchmark sets it for every process it starts. Then each mark appends one
line `run_id stage monotonic_seconds` to that file, in one write(2) on a file opened with O_APPEND, so lines of several
processes never interleave. time.monotonic() is one clock for every process on a Linux machine, so the marks of the
adapter, the worker and the stand-ins line up. Off, a mark costs one comparison.
"""

from __future__ import annotations

import os
import time
from contextvars import ContextVar

TRACE_ENV = "BOT_TRACE_FILE"

# The run being advanced in this task (set by the engine), for marks made deep inside a step.
current_run: ContextVar[int | None] = ContextVar("trace_run", default=None)

_path = os.environ.get(TRACE_ENV) or None
_fd: int | None = None


def configure(path: str | os.PathLike[str] | None) -> None:
    """Mark into `path` from now on (None: stop), for a process that decides after import, such as the benchmark.
    Processes it starts get BOT_TRACE_FILE in their environment instead."""
    global _path, _fd
    if _fd is not None:
        os.close(_fd)
    _path, _fd = (os.fspath(path) if path is not None else None), None


def mark(stage: str, run_id: int | None = None) -> None:
    """Note that `stage` (a word without spaces) was reached now, for `run_id` (or the run this task advances)."""
    if _path is None:
        return
    key = run_id if run_id is not None else current_run.get()
    if key is None:
        return
    global _fd
    if _fd is None:
        _fd = os.open(_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(_fd, f"{key} {stage} {time.monotonic():.6f}\n".encode())


def read(path: str | os.PathLike[str]) -> dict[int, dict[str, list[float]]]:
    """Every mark in the file: per run, per stage, the times it was reached (in order)."""
    marks: dict[int, dict[str, list[float]]] = {}
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            key, stage, at = line.split()
            marks.setdefault(int(key), {}).setdefault(stage, []).append(float(at))
    return marks
