"""ack: signed Slack HTTP events at fixed rates against `bot serve slack --http`; how fast Slack gets its 200.

Open loop: each event is sent at its scheduled time whether or not earlier ones were answered, and latency is
counted from that scheduled time, so a server that falls behind shows it instead of slowing the generator down.
The adapter runs as its own process (no worker in it: the ack path alone), Slack's Web API is the sandbox.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import socket
import sys
import time
from typing import Any

import httpx

from bench.harness import services
from bench.report import Result, summary_ms
from sandbox.slack_server import BOT_USER_ID, TEAM_ID, SlackSandbox

SECRET = "bench-signing-secret"
RATES = (50, 200, 500)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def signed_event(n: int, rate: int) -> tuple[bytes, dict[str, str]]:
    ts = f"{1_700_000_000 + rate}.{n:06d}"
    body = json.dumps(
        {
            "team_id": TEAM_ID,
            "api_app_id": "A0BENCH",
            "type": "event_callback",
            "event_id": f"Ev{rate}x{n}",
            "event_time": int(time.time()),
            "event": {
                "type": "app_mention",
                "user": f"U{n % 50:04d}",
                "text": f"<@{BOT_USER_ID}> question {n} at {rate}/s",
                "ts": ts,
                "channel": f"C{rate}",
            },
        }
    ).encode()
    stamp = str(int(time.time()))
    signature = hmac.new(SECRET.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return body, {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={signature}",
    }


async def _load(url: str, rate: int, duration_s: float) -> dict[str, Any]:
    count = int(rate * duration_s)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(timeout=10.0, limits=limits) as client:
        # Signing happens before the clock starts: the generator's own CPU must not count as the server's latency.
        requests = [signed_event(n, rate) for n in range(count)]
        start = time.perf_counter() + 0.2

        async def one(n: int) -> None:
            scheduled = start + n / rate
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            body, headers = requests[n]
            try:
                response = await client.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                return
            if response.status_code != 200:
                errors[str(response.status_code)] = errors.get(str(response.status_code), 0) + 1
                return
            latencies.append(time.perf_counter() - scheduled)

        await asyncio.gather(*(one(n) for n in range(count)))
        elapsed = time.perf_counter() - start
    return {"latencies": latencies, "errors": errors, "sent": count, "elapsed": elapsed}


async def run(quick: bool) -> Result:
    duration_s = 2.0 if quick else 10.0
    rows: list[dict[str, Any]] = []
    async with services() as (settings, llm_url), SlackSandbox(bot_token="xoxb-bench") as slack:
        port = _free_port()
        env = {
            **os.environ,
            "DATABASE_URL": settings.database_url,
            "REDIS_URL": settings.redis_url,
            "OPENAI_BASE_URL": llm_url,
            "OPENAI_API_KEY": "bench",
            "LOG_LEVEL": "WARNING",
            "RATE_LIMIT_PER_MINUTE": "0",
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack.api_url,
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "serve", "slack", "--http", "--no-worker",
            "--host", "127.0.0.1", "--port", str(port), env=env, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            await _wait_healthy(port, proc)
            url = f"http://127.0.0.1:{port}/slack/events"
            await _load(url, 20, 1.0)  # warm-up: Bolt's first auth.test, connection pools
            for rate in RATES:
                measured = await _load(url, rate, duration_s)
                summary = summary_ms(measured["latencies"])
                rows.append(
                    {
                        "events/s": rate,
                        "sent": measured["sent"],
                        "acked": summary["n"],
                        "errors": sum(measured["errors"].values()),
                        "p50_ms": summary["p50_ms"],
                        "p99_ms": summary["p99_ms"],
                        "max_ms": summary["max_ms"],
                        "achieved/s": round(summary["n"] / measured["elapsed"], 1),
                    }
                )
        finally:
            proc.terminate()
            await proc.wait()
    at_200 = next(r for r in rows if r["events/s"] == 200)
    return Result(
        "ack",
        rows,
        targets=[
            f"ack p99 <= 25 ms at 200 events/s: measured {at_200['p99_ms']} ms "
            f"({'met' if at_200['p99_ms'] <= 25 else 'not met'}); Slack's own deadline is 3,000 ms"
        ],
        notes=[
            f"{duration_s:g} s per rate, open loop, latency from each event's scheduled send time; signature "
            "verification, Bolt, intake (dedupe, insert, enqueue) in one `bot serve slack --http` process.",
            "The load generator, Postgres, Redis and the adapter share the machine's cores.",
        ],
    )


async def _wait_healthy(port: int, proc: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise RuntimeError("bot serve slack exited during start-up")
            try:
                if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("bot serve slack did not start within 60 s")
