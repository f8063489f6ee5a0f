"""A service a command cannot reach is named, with its setting and what went wrong, and the command exits 3: the
README's promise, checked as an operator meets it (a closed port, a host that does not exist)."""

from __future__ import annotations

from bot.config import Settings
from bot.embedded import free_port  # a port nothing listens on
from tests.conftest import run_bot, subprocess_env


async def test_a_closed_postgres_port_is_named_and_exits_3(settings: Settings) -> None:
    env = subprocess_env(settings)
    env["DATABASE_URL"] = f"postgresql://bot:secret@127.0.0.1:{free_port()}/bot"
    code, _, stderr = await run_bot("runs", "list", env=env)
    assert code == 3, stderr
    assert "Could not reach Postgres (DATABASE_URL): Connection refused" in " ".join(stderr.split())
    assert "Traceback" not in stderr
    assert "secret" not in stderr, "the password in the URL is not printed"


async def test_an_unknown_database_host_is_named_and_exits_3(settings: Settings) -> None:
    env = subprocess_env(settings)
    env["DATABASE_URL"] = "postgresql://bot@no-such-host.invalid:5432/bot"
    code, _, stderr = await run_bot("db", "upgrade", env=env)
    assert code == 3, stderr
    assert "Could not reach Postgres (DATABASE_URL)" in " ".join(stderr.split())
    assert "Traceback" not in stderr


async def test_a_closed_redis_port_is_named_and_exits_3(settings: Settings) -> None:
    env = subprocess_env(settings)  # a real Postgres: only Redis is missing
    env["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    code, _, stderr = await run_bot("ask", "hello", env=env)
    assert code == 3, stderr
    assert "Could not reach Redis (REDIS_URL)" in " ".join(stderr.split())
    assert "Traceback" not in stderr
