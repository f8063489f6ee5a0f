"""`bot serve slack --http` as an operator runs it: a separate process with its own worker, signed events in,
the reply in the Slack thread."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys

import httpx

from bot.config import Settings
from bot.runtime import Runtime
from sandbox.openai_server import StandInLLM, Step
from sandbox.slack_server import SlackSandbox
from tests.adapters.slack.conftest import CHANNEL, SIGNING_SECRET, SlackEvents, mention
from tests.conftest import subprocess_env, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
        async with httpx.AsyncClient(timeout=5.0) as http:

            async def healthy() -> bool:
                try:
                    return (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(healthy, timeout_s=60, interval_s=0.2)
            events = SlackEvents(url=f"http://127.0.0.1:{port}/slack/events", http=http)
            event = mention("Hello from a real Slack request")
            assert (await events.event(event)).status_code == 200
            await wait_for(lambda: [m for m in slack.thread(CHANNEL, event["ts"]) if "command line" in m.text])
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert f"Listening for Slack events on http://127.0.0.1:{port}/slack/events" in stderr.decode()
    assert slack.bot_token not in stderr.decode(), "the token is never logged"
