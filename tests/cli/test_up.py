"""`bot up` as a user runs it: it prints the console's URL with a login token, the console and its worker answer
in the browser's playground, and SIGTERM stops all of it. `bot serve web` runs the console alone."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import signal
import sys
import time

import aiohttp

from bot.config import Settings
from bot.embedded import free_port
from bot.runtime import Runtime
from sandbox.slack_server import SlackSandbox
from tests.conftest import subprocess_env

URL = re.compile(r"Web console: (http://127\.0\.0\.1:\d+)/login\?token=(\S+)")


async def read_url(proc: asyncio.subprocess.Process, timeout_s: float = 60) -> tuple[str, str]:
    assert proc.stdout is not None

    async def first() -> tuple[str, str]:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            found = URL.search(line.decode())
            if found:
                return found.group(1), found.group(2)
        raise AssertionError("bot exited without printing the console's URL")

    return await asyncio.wait_for(first(), timeout_s)


async def test_bot_up_serves_the_console_and_its_worker_and_stops_on_sigterm(
    settings: Settings, runtime: Runtime
) -> None:
    env = subprocess_env(settings) | {"WEB_PORT": "0"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", "up", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        base, token = await read_url(proc)
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.get(base + "/healthz") as response:
                assert response.status == 200
            async with http.get(base + "/") as response:
                assert response.status == 401
            async with http.get(f"{base}/login?token={token}") as response:
                assert response.status == 200  # followed to the runs page
            async with http.get(base + "/playground?thread=up-1") as response:
                csrf = re.search(r'data-csrf="([^"]+)"', await response.text())
            assert csrf is not None
            async with http.post(
                base + "/playground/send",
                data={"thread": "up-1", "text": "hi"},
                headers={"X-CSRF-Token": csrf.group(1)},
            ) as response:
                run_id = (await response.json())["run_id"]
            for _ in range(200):  # the in-process worker answers
                async with http.get(f"{base}/runs/{run_id}") as response:
                    if "s-completed" in await response.text():
                        break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the run was not answered")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), 40)
    assert proc.returncode == 0, stderr.decode()
    assert "Answering on: web, console" in stderr.decode()
    # The token is kept (0600) for the next start, so sessions outlive a restart.
    kept = settings.data_dir / "web_admin_token"
    assert kept.read_text().strip() == token
    assert kept.stat().st_mode & 0o077 == 0


async def test_serve_web_uses_the_configured_token_and_does_not_print_it(settings: Settings, runtime: Runtime) -> None:
    env = subprocess_env(settings) | {"WEB_PORT": "0", "WEB_ADMIN_TOKEN": "configured-token-123"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", "serve", "web", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        assert "log in with WEB_ADMIN_TOKEN" in line
        assert "configured-token-123" not in line
        base = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert base is not None
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.get(f"{base.group(0)}/login?token=configured-token-123", allow_redirects=False) as response:
                assert response.status == 303
            async with http.get(f"{base.group(0)}/readyz") as response:
                assert (await response.json())["redis"] == "ok"
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 40)
    assert proc.returncode == 0


async def test_a_worker_answers_health_and_metrics_on_its_port(settings: Settings, runtime: Runtime) -> None:
    port = free_port()
    env = subprocess_env(settings) | {"WORKER_HEALTH_PORT": str(port)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli",
        "worker",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                try:
                    async with http.get(base + "/healthz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the worker's health port never answered")
            async with http.get(base + "/readyz") as response:
                assert response.status == 200
                assert (await response.json())["postgres"] == "ok"
            async with http.get(base + "/metrics") as response:
                assert "threadbot_queue_depth" in await response.text()
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 40)
    assert proc.returncode == 0


async def test_bot_up_starts_slack_when_its_credentials_are_set(settings: Settings, runtime: Runtime) -> None:
    async with SlackSandbox() as slack:
        slack_port = free_port()
        env = subprocess_env(settings) | {
            "WEB_PORT": "0",
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_SIGNING_SECRET": "s3cret",
            "SLACK_API_URL": slack.api_url,
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cli", "up", "--slack-port", str(slack_port), env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            await read_url(proc)
            body = json.dumps({"type": "url_verification", "challenge": "c-123"}).encode()
            stamp = str(int(time.time()))
            signature = "v0=" + hmac.new(b"s3cret", f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
            headers = {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature}
            async with (
                aiohttp.ClientSession() as http,
                http.post(f"http://127.0.0.1:{slack_port}/slack/events", data=body, headers=headers) as response,
            ):
                assert response.status == 200
                assert "c-123" in await response.text()
        finally:
            proc.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(proc.communicate(), 40)
    assert proc.returncode == 0, stderr.decode()
    assert f"Answering on: web, console, slack (HTTP on port {slack_port})" in stderr.decode()
