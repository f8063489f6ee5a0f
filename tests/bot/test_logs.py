"""One log format for our lines and the libraries': with LOG_JSON every stderr line is a JSON object, and the
libraries' INFO chatter (alembic's "Context impl" on every command, APScheduler's starts) stays out of INFO."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Iterator

import pytest
import structlog

from bot.config import Settings
from bot.logs import configure_logging
from tests.conftest import run_bot, subprocess_env


@pytest.fixture
def restore_logging() -> Iterator[None]:
    yield
    configure_logging("INFO")


def test_with_json_every_line_is_json_ours_and_the_libraries(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    configure_logging("INFO", json=True)
    structlog.get_logger("bot.test").info("ours", n=1)
    logging.getLogger("aiohttp.access").warning("a library's line")
    logging.getLogger("alembic.runtime.migration").info("Context impl PostgresqlImpl.")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("apscheduler.executors").exception("job failed")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert [line["event"] for line in lines] == ["ours", "a library's line", "job failed"]
    assert lines[1]["logger"] == "aiohttp.access"
    assert lines[1]["level"] == "warning"
    assert "ValueError: boom" in lines[2]["exception"]


async def test_commands_print_no_migration_chatter(settings: Settings) -> None:
    env = subprocess_env(settings)
    env["LOG_JSON"] = "true"
    code, _, stderr = await run_bot("db", "upgrade", env=env)
    assert code == 0, stderr
    assert "Context impl" not in stderr
    for line in stderr.splitlines():
        if line.strip():
            json.loads(line)  # not a plain-text line among the JSON ones


async def test_a_log_line_during_a_streaming_reply_starts_on_its_own_line() -> None:
    # stdout and stderr on one pipe, as on a terminal: the reply is cut where the log line arrives, not glued to it.
    script = (
        "import structlog\n"
        "from bot.logs import configure_logging, write_stdout\n"
        "configure_logging('INFO')\n"
        "write_stdout('The answer is')\n"
        "structlog.get_logger('bot.test').warning('a warning mid-reply')\n"
        "write_stdout(' forty-two.')\n"
        "write_stdout('\\n')\n"
        "structlog.get_logger('bot.test').warning('after the reply')\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    lines = out.decode().splitlines()
    assert lines[0] == "The answer is"
    assert "a warning mid-reply" in lines[1]
    assert lines[2] == " forty-two."
    assert "after the reply" in lines[3], "no blank line where the reply had ended its own line"
    assert len(lines) == 4
