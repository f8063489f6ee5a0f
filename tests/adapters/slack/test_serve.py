"""`bot serve slack --http` as an operator runs it: a separate process with its own worker, signed events in,
the reply in the Slack thread."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import httpx
import psutil
from sqlalchemy import select

from bench.ack import wait_healthy
from bot.config import Settings
from bot.db import create_engine
from bot.embedded import EmbeddedPostgres, free_port
from bot.models import MESSAGES
from bot.runtime import Runtime
from sandbox.openai_server import StandInLLM, Step
from sandbox.slack_server import SlackSandbox
from tests.adapters.slack.conftest import CHANNEL, SIGNING_SECRET, SlackEvents, mention
from tests.conftest import subprocess_env, wait_for


async def test_bot_serve_slack_http_answers_a_mention(
    settings: Settings, runtime: Runtime, stand_in: StandInLLM, slack: SlackSandbox
) -> None:
    stand_in.script(Step(reply="Served from the command line."))
    port = free_port()
    env = subprocess_env(settings)
    env.update(SLACK_BOT_TOKEN=slack.bot_token, SLACK_SIGNING_SECRET=SIGNING_SECRET, SLACK_API_URL=slack.api_url)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", "serve", "slack", "--http", "--host", "127.0.0.1", "--port", str(port), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await wait_healthy(port, proc)
        async with httpx.AsyncClient(timeout=5.0) as http:
            events = SlackEvents(url=f"http://127.0.0.1:{port}/slack/events", http=http)
            event = mention("Hello from a real Slack request")
            assert (await events.event(event)).status_code == 200
            await wait_for(lambda: [m for m in slack.thread(CHANNEL, event["ts"]) if "command line" in m.text])
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert f"Listening for Slack events on http://127.0.0.1:{port}/slack/events" in stderr.decode()
    assert slack.bot_token not in stderr.decode(), "the token is never logged"


async def test_sigterm_during_a_burst_keeps_every_acked_message_and_leaves_no_process(
    settings: Settings, stand_in: StandInLLM, slack: SlackSandbox, tmp_path: Path
) -> None:
    # No DATABASE_URL or REDIS_URL: the command starts embedded services of its own, and must stop them.
    data_dir = tmp_path / "data"
    env = subprocess_env(settings)
    for name in ("DATABASE_URL", "REDIS_URL"):
        env.pop(name, None)
    env.update(DATA_DIR=str(data_dir), SLACK_BOT_TOKEN=slack.bot_token, SLACK_SIGNING_SECRET=SIGNING_SECRET,
               SLACK_API_URL=slack.api_url, RATE_LIMIT_PER_MINUTE="0")  # fmt: skip
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", "serve", "slack", "--http", "--host", "127.0.0.1", "--port", str(port), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    acked: list[str] = []
    await wait_healthy(port, proc)  # no more than a minute: starting embedded Postgres is part of it
    async with httpx.AsyncClient(timeout=10.0) as http:
        started = [int((data_dir / "redis" / "redis.pid").read_text()), EmbeddedPostgres(data_dir).postmaster_pid()]
        events = SlackEvents(url=f"http://127.0.0.1:{port}/slack/events", http=http)
        burst = [mention(f"question {i}") for i in range(40)]

        async def send(event: dict[str, Any]) -> None:
            try:
                if (await events.event(event)).status_code == 200:
                    acked.append(str(event["ts"]))
            except httpx.TransportError:
                pass  # not acked: Slack would deliver it again

        sending = [asyncio.create_task(send(event)) for event in burst]
        await wait_for(lambda: len(acked) >= 5, timeout_s=30, interval_s=0.01)
        proc.send_signal(signal.SIGTERM)
        await asyncio.gather(*sending)
        _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    assert "Traceback" not in stderr.decode()
    assert all(pid is not None for pid in started)
    left = [pid for pid in started if pid is not None and _running(pid)]
    assert left == [], "the Redis and Postgres it started were stopped"

    postgres = EmbeddedPostgres(data_dir)
    url = await asyncio.to_thread(postgres.start)
    try:
        engine = create_engine(url, pool_size=1)
        async with engine.connect() as conn:
            stored = set((await conn.execute(select(MESSAGES.c.platform_message_id))).scalars())
        await engine.dispose()
    finally:
        await asyncio.to_thread(postgres.stop)
    assert acked, "some events were acked before the signal"
    assert set(acked) <= stored, "every message Slack got a 200 for was kept"


def _running(pid: int) -> bool:
    """Alive and not a zombie (an exited server init has not reaped yet)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
