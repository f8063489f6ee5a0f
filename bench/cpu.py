"""CPU seconds spent by each process of the system under benchmark, so a throughput figure can be split into who
paid for it: on a 2-core machine the load generator, the stand-ins, Postgres and Redis share the cores with the
worker, and their share bounds what any worker could reach there."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psutil

from bot.embedded import EmbeddedPostgres


@dataclass
class CpuMeter:
    """Processes by role. Postgres counts its postmaster, its live backends and the backends it has reaped."""

    roles: dict[str, list[psutil.Process]]
    postmaster: psutil.Process | None

    @classmethod
    def of_system(cls, data_dir: Path, worker_pids: list[int]) -> CpuMeter:
        me = psutil.Process()
        stand_ins = [p for p in me.children() if "sandbox.openai_server" in " ".join(_cmdline(p))]
        roles: dict[str, list[psutil.Process]] = {
            "worker": [psutil.Process(pid) for pid in worker_pids],
            "stand-in LLM": stand_ins,
            "intake + load generator": [me],
        }
        redis_pid = data_dir / "redis" / "redis.pid"
        if redis_pid.exists():
            roles["redis"] = [psutil.Process(int(redis_pid.read_text().strip()))]
        pid = EmbeddedPostgres(data_dir).postmaster_pid()
        return cls(roles, psutil.Process(pid) if pid is not None else None)

    def read(self) -> dict[str, float]:
        seconds = {role: sum(_cpu(p) for p in processes) for role, processes in self.roles.items()}
        if self.postmaster is not None:
            times = self.postmaster.cpu_times()
            reaped = times.children_user + times.children_system
            seconds["postgres"] = _cpu(self.postmaster) + reaped + sum(_cpu(c) for c in _children(self.postmaster))
        return seconds


def per_item_ms(before: dict[str, float], after: dict[str, float], items: int) -> dict[str, float]:
    """CPU milliseconds per item (a reply, say) by role, between two readings."""
    return {role: round((after[role] - before.get(role, 0.0)) * 1000 / items, 2) for role in after}


def _cpu(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def _children(process: psutil.Process) -> list[psutil.Process]:
    try:
        return process.children(recursive=True)
    except psutil.Error:
        return []


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []
