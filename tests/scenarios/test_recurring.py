"""A recurring schedule with two worker processes: one runs the scheduler, each tick fires once and on time,
and when the leader is killed the other process takes over without a doubled or lost tick."""

from __future__ import annotations

import asyncio
import itertools
import signal
import sys
from datetime import datetime
from typing import Any, TypedDict, cast

from sqlalchemy import select

from adapters.console.inbound import console_thread
from bot.catalog import COMMANDS
from bot.events import SlashCommand
from bot.runtime import Runtime
from bot.workflows.models import RUNS
from tests.conftest import subprocess_env, thread_view, wait_for

LEADER_LINE = "now runs the recurring-schedule scheduler"


class WorkerProcess:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.lines.append(line.decode(errors="replace"))

    @property
    def leads(self) -> bool:
        return any(LEADER_LINE in line for line in self.lines)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await self.reader


async def start_worker(runtime: Runtime) -> WorkerProcess:
    env = subprocess_env(runtime.settings)
    env.update(MIN_REPEAT_INTERVAL_S="1", SCHEDULER_SYNC_INTERVAL_S="0.5", WORKFLOW_SWEEP_INTERVAL_S="0.5")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", "worker", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    return WorkerProcess(proc)


async def test_two_schedulers_fire_each_tick_once_and_fail_over(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.model_copy(update={"min_repeat_interval_s": 1.0})
    workers = [await start_worker(runtime), await start_worker(runtime)]
    try:
        await wait_for(lambda: any(w.leads for w in workers), timeout_s=60)
        reply = await COMMANDS.handle(
            runtime,
            SlashCommand("cmd-every", console_thread("standup"), "ada", "/remind", "every 2 seconds standup time"),
        )
        assert reply.text.startswith("🔁 I'll remind you every 2 seconds: standup time."), reply.text
        await wait_for(lambda: _ticks(runtime, 3), timeout_s=30)
        assert sum(w.leads for w in workers) == 1, "exactly one process runs the scheduler"
        leader = next(w for w in workers if w.leads)
        follower = next(w for w in workers if not w.leads)
        before_kill = len(await _runs(runtime))
        leader.proc.send_signal(signal.SIGKILL)
        await leader.proc.wait()
        await wait_for(lambda: follower.leads, timeout_s=30)
        await wait_for(lambda: _ticks(runtime, before_kill + 3), timeout_s=30)
    finally:
        for w in workers:
            await w.stop()

    runs = await _runs(runtime)
    ticks = [datetime.fromisoformat(run["input"]["tick"]) for run in runs]
    assert len(set(ticks)) == len(ticks), "no tick fired twice"
    gaps = {(later - earlier).total_seconds() for earlier, later in itertools.pairwise(ticks)}
    assert gaps == {2.0}, f"ticks every 2 s with none lost across the failover: {sorted(gaps)}"
    on_time = zip(runs[:before_kill], ticks, strict=False)
    lateness = [(run["created_at"] - tick).total_seconds() for run, tick in on_time]
    assert max(lateness) < 1.5, f"ticks fire on time: {lateness}"
    completed = [run for run in runs if run["status"] == "completed"]
    posts = await thread_view(runtime, console_thread("standup"))
    assert posts == ["🔁 ada: standup time"] * len(completed)
    assert len(completed) >= len(runs) - 1, "every tick's reminder was posted (the last may still be running)"


class _Run(TypedDict):
    input: dict[str, Any]
    status: str
    created_at: datetime


async def _runs(rt: Runtime) -> list[_Run]:
    async with rt.autocommit.connect() as conn:
        rows = await conn.execute(
            select(RUNS.c.input, RUNS.c.status, RUNS.c.created_at)
            .where(RUNS.c.workflow == "recurring_reminder")
            .order_by(RUNS.c.id)
        )
        return [cast(_Run, dict(row)) for row in rows.mappings()]


async def _ticks(rt: Runtime, count: int) -> bool:
    runs = await _runs(rt)
    return sum(run["status"] == "completed" for run in runs) >= count
