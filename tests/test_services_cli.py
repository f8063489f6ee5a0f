"""`bot services` as an operator runs it, in processes of its own: what it leaves under DATA_DIR is the bot's
user's alone, and commands started together share one Postgres and one Redis, all stopped by `bot services stop`."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from bot.config import Settings


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A DATA_DIR not made yet (the command makes it), on a short path (Postgres's socket is in it); whatever
    servers a test leaves under it are stopped, then killed."""
    with tempfile.TemporaryDirectory(prefix="tbs-") as folder:
        data = Path(folder) / "data"
        try:
            yield data
        finally:
            if data.exists():
                subprocess.run([sys.executable, "-m", "cli", "services", "stop"], env=bot_env(data), timeout=60)
            for proc in servers_of(data):
                proc.kill()


def bot_env(data: Path) -> dict[str, str]:
    """No configured URLs, so the commands use the embedded servers under `data`."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in {n.upper() for n in Settings.model_fields}}
    env.update(DATA_DIR=str(data), OPENAI_API_KEY="unused", LOG_LEVEL="WARNING")
    return env


def servers_of(data: Path) -> list[psutil.Process]:
    """Every redis-server working in `data` and every postmaster serving its pgdata, whatever pid files say."""
    redis_dir, pgdata = str((data / "redis").resolve()), str((data / "postgres").resolve())
    found = []
    for proc in psutil.process_iter(["name", "cmdline", "ppid"]):
        try:
            if proc.info["name"] == "redis-server" and proc.cwd() == redis_dir:
                found.append(proc)
            elif proc.info["name"] == "postgres" and pgdata in (proc.info["cmdline"] or []):
                found.append(proc)  # the postmaster: its backends' command lines are "postgres: ..."
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def start(data: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "services", "start"], env=bot_env(data),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def finish(proc: subprocess.Popen[str]) -> str:
    output, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, output
    return output


def too_open(data: Path) -> list[str]:
    """Paths under `data` (itself included) that another local user could read, write or list."""
    found = []
    for path in [data, *data.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        allowed = 0
        if path == data and os.geteuid() == 0:
            allowed = stat.S_IXGRP  # as root, Postgres runs as the `pgserver` user, whose group must pass through
        if mode & 0o077 & ~allowed:
            found.append(f"{oct(mode)} {path.relative_to(data.parent)}")
    return found


def test_services_start_leaves_nothing_readable_by_other_users(data_dir: Path) -> None:
    finish(start(data_dir))
    names = {p.name for p in data_dir.rglob("*")}
    assert {"redis.pid", "redis.port", "redis.log", "redis.pass", "appendonly.aof", "PG_VERSION"} <= names
    assert too_open(data_dir) == []

    # A folder made by an older version (or a server's default umask): opened up, then fixed by the next start.
    stopped = subprocess.run(
        [sys.executable, "-m", "cli", "services", "stop"], env=bot_env(data_dir), capture_output=True, text=True
    )
    assert "Stopped: Postgres, Redis." in stopped.stdout, stopped.stdout + stopped.stderr
    for path in [data_dir, *(data_dir / "redis").rglob("*"), data_dir / "redis"]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    (data_dir / "postgres" / "log").chmod(0o644)
    finish(start(data_dir))
    assert too_open(data_dir) == []


def test_commands_started_together_share_one_postgres_and_one_redis(data_dir: Path) -> None:
    starts = [start(data_dir) for _ in range(3)]
    outputs = [finish(proc) for proc in starts]
    assert len({line for out in outputs for line in out.splitlines() if line.startswith("Redis:")}) == 1, outputs

    servers = servers_of(data_dir)
    assert sorted(p.info["name"] for p in servers) == ["postgres", "redis-server"], servers
    redis_pid = int((data_dir / "redis" / "redis.pid").read_text())
    assert redis_pid in {p.pid for p in servers}, "the running Redis is the one its pid file names"

    stopped = subprocess.run(
        [sys.executable, "-m", "cli", "services", "stop"], env=bot_env(data_dir), capture_output=True, text=True
    )
    assert "Stopped: Postgres, Redis." in stopped.stdout, stopped.stdout + stopped.stderr
    assert servers_of(data_dir) == [], "bot services stop leaves no server running"
