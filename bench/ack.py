"""ack: signed Slack HTTP events at fixed rates against `bot serve slack --http`; how fast Slack gets its 200.

Open loop (bench/loadgen.py): each event is sent at its scheduled time whether or not earlier ones were answered,
and latency is counted from that scheduled time. The adapter runs as its own process (no worker in it: the ack
path alone), Slack's Web API is the sandbox. Each rate is also run against the adapter's health check, which
shows what the generator and the HTTP server cost before Bolt and intake add theirs.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import sys
import time
from typing import Any

import httpx

from adapters.slack.serve import EVENTS_PATH
from bench.harness import services
from bench.loadgen import Outcome, http_request, open_loop
from bench.report import Result, summary_ms
from bot.embedded import free_port
from sandbox.slack_server import BOT_USER_ID, TEAM_ID, SlackSandbox

SECRET = "bench-signing-secret"
RATES = (50, 200, 500)


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


def _events(port: int, rate: int, count: int) -> list[bytes]:
    # Signed before the clock starts: the generator's own CPU must not count as the server's latency.
    return [
        http_request("POST", "127.0.0.1", port, EVENTS_PATH, headers, body)
        for body, headers in (signed_event(n, rate) for n in range(count))
    ]


def _health_checks(port: int, count: int) -> list[bytes]:
    return [http_request("GET", "127.0.0.1", port, "/healthz", {})] * count


def _row(path: str, rate: int, outcome: Outcome) -> dict[str, Any]:
    summary = summary_ms(outcome.latencies_s)
    return {
        "request": path,
        "events/s": rate,
        "sent": outcome.sent,
        "acked": summary["n"],
        "errors": sum(outcome.errors.values()),
        "p50_ms": summary["p50_ms"],
        "p99_ms": summary["p99_ms"],
        "max_ms": summary["max_ms"],
        "achieved/s": round(summary["n"] / outcome.elapsed_s, 1) if outcome.elapsed_s else 0.0,
    }


async def run(quick: bool) -> Result:
    duration_s = 2.0 if quick else 10.0
    rows: list[dict[str, Any]] = []
    async with services() as (settings, llm_url), SlackSandbox(bot_token="xoxb-bench") as slack:
        port = free_port()
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
        proc = await start_adapter(port, env)
        try:
            await open_loop("127.0.0.1", port, _events(port, 0, 20), 20)  # warm-up: Bolt's auth.test, pools
            for rate in RATES:
                count = int(rate * duration_s)
                # The same generator against the adapter's health check: what aiohttp and the generator cost alone.
                floor = await open_loop("127.0.0.1", port, _health_checks(port, count), rate)
                rows.append(_row("GET /healthz", rate, floor))
                events = await open_loop("127.0.0.1", port, _events(port, rate, count), rate)
                rows.append(_row(f"POST {EVENTS_PATH}", rate, events))
        finally:
            proc.terminate()
            await proc.wait()
    at_50 = next(r for r in rows if r["events/s"] == 50 and r["request"].startswith("POST"))
    at_200 = next(r for r in rows if r["events/s"] == 200 and r["request"].startswith("POST"))
    return Result(
        "ack",
        rows,
        targets=[
            f"ack p50 <= 3 ms at 50 events/s: measured {at_50['p50_ms']} ms "
            f"({'met' if at_50['p50_ms'] <= 3 else 'NOT met'}); p99 <= 10 ms: {at_50['p99_ms']} ms "
            f"({'met' if at_50['p99_ms'] <= 10 else 'NOT met'})",
            f"ack p99 <= 25 ms at 200 events/s: measured {at_200['p99_ms']} ms "
            f"({'met' if at_200['p99_ms'] <= 25 else 'NOT met'}); Slack's own deadline is 3,000 ms",
        ],
        notes=[
            f"{duration_s:g} s per rate, open loop, latency from each request's scheduled send time (bench/loadgen.py:"
            " raw keep-alive HTTP/1.1, requests built beforehand). POST: signature verification, Bolt, then intake "
            "(dedupe, insert, enqueue) before the ack, in one `bot serve slack --http --no-worker` process.",
            "GET /healthz: the same generator and aiohttp server with nothing behind them, at the same rate: the "
            "floor under the POST rows.",
            "The load generator, Postgres, Redis and the adapter share the machine's cores.",
        ],
    )


async def start_adapter(port: int, env: dict[str, str]) -> asyncio.subprocess.Process:
    """`bot serve slack --http --no-worker` on 127.0.0.1:`port`, once its health check answers."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", "serve", "slack", "--http", "--no-worker",
        "--host", "127.0.0.1", "--port", str(port), env=env, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    await wait_healthy(port, proc)
    return proc


async def wait_healthy(port: int, proc: asyncio.subprocess.Process) -> None:
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
