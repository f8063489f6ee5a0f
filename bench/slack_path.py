"""slack: the durable path as Slack drives it. Signed Events API requests go to `bot serve slack --http
--no-worker` (its own process); a `bot worker` process answers through the Slack sandbox's Web API, which runs in
this process, so its record of each call (`SlackCall.at`, on time.monotonic()) says when a reply became visible
and when it was complete. Every process marks its stages (`bot.trace`), so the per-stage table covers the ack too.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
from sqlalchemy import text

from adapters.slack.serve import EVENTS_PATH
from bench import e2e, stages
from bench.ack import SECRET, signed_event, start_adapter
from bench.cpu import CpuMeter, per_item_ms
from bench.harness import STRATEGY_ENV, Bench, services, start_worker, workers_ready
from bench.report import Result, summary_ms
from bench.stages import Stage
from bot import trace
from bot.embedded import free_port
from jobs.queue import open_runtime
from sandbox.slack_server import SlackCall, SlackSandbox

# Kinds of events, one per `signed_event` "rate" argument, so each kind has its own channel and timestamps.
WARMUP, SEQUENTIAL, BURST = 1, 2, 3
# The ack is the adapter's; the rest of the path is the same as the console's, then the sandbox sees the reply.
SLACK_STAGES = [
    Stage("ack", "sent", "acked", "signature, Bolt and intake, until Slack has its 200 (overlaps intake)"),
    *stages.STAGES,
]
BOT_ROLES = ("Slack adapter", "worker", "postgres", "redis")


@dataclass
class SlackBench:
    bench: Bench
    slack: SlackSandbox
    adapter: asyncio.subprocess.Process
    port: int
    client: httpx.AsyncClient

    async def mention(self, kind: int, n: int) -> tuple[str, float, float]:
        """Send one signed app_mention; its channel and ts, when it was sent and when it was acked."""
        body, headers = signed_event(n, kind)
        sent = time.monotonic()
        response = await self.client.post(f"http://127.0.0.1:{self.port}{EVENTS_PATH}", content=body, headers=headers)
        acked = time.monotonic()
        response.raise_for_status()
        event = json.loads(body)["event"]
        return f"{event['channel']}/{event['ts']}", sent, acked

    def replies(self) -> dict[str, tuple[float, float]]:
        """Per `channel/thread_ts`: when the bot's first text showed and when its complete reply did."""
        threads = {(m.channel, m.ts): m.thread_ts for m in self.slack.messages if m.thread_ts}
        seen: dict[str, tuple[float, float]] = {}
        for call in self.slack.calls:
            where = _thread_of(call, threads)
            if where is None:
                continue
            first, done = seen.get(where, (call.at, 0.0))
            if not done and str(call.args.get("text", "")).endswith(e2e.REPLY_END.decode()):
                done = call.at
            seen[where] = (first, done)
        return seen

    async def wait_for(self, threads: set[str], timeout_s: float) -> dict[str, tuple[float, float]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            seen = self.replies()
            if all(seen.get(t, (0.0, 0.0))[1] for t in threads):
                return seen
            await asyncio.sleep(0.001)
        missing = sum(1 for t in threads if not self.replies().get(t, (0.0, 0.0))[1])
        raise TimeoutError(f"{missing} Slack replies did not arrive in {timeout_s} s")


def _thread_of(call: SlackCall, threads: Mapping[tuple[str, str], str | None]) -> str | None:
    # A reply's first text is a chat.postMessage in the mention's thread; chat.update then edits it by its ts.
    channel = str(call.args.get("channel", ""))
    if call.method == "chat.postMessage" and call.args.get("thread_ts"):
        return f"{channel}/{call.args['thread_ts']}"
    if call.method == "chat.update" and (thread := threads.get((channel, str(call.args.get("ts"))))):
        return f"{channel}/{thread}"
    return None


@asynccontextmanager
async def slack_system(**worker_env: str) -> AsyncIterator[SlackBench]:
    async with services() as (settings, llm_url), SlackSandbox(bot_token="xoxb-bench") as slack:
        slack_env = {
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack.api_url,
            "RATE_LIMIT_PER_MINUTE": "0",
            **STRATEGY_ENV,
            **worker_env,
        }
        port = free_port()
        env = {**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url,
               "OPENAI_BASE_URL": llm_url, "OPENAI_API_KEY": "bench", "LOG_LEVEL": "WARNING", **slack_env}  # fmt: skip
        procs = [await start_worker(settings, **slack_env)]
        try:
            procs.append(adapter := await start_adapter(port, env))
            async with open_runtime(settings) as runtime, httpx.AsyncClient(timeout=30) as client:
                await workers_ready(runtime, procs[:1])
                bench = Bench(settings=settings, runtime=runtime, llm_url=llm_url, workers=procs[:1])
                yield SlackBench(bench, slack, adapter, port, client)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                await proc.wait()


async def _run_ids(bench: Bench) -> dict[str, int]:
    """The run each Slack message started, by `channel/ts`."""
    async with bench.runtime.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT channel_id, platform_message_id, run_id FROM messages m JOIN threads t ON t.id = m.thread_id"
                " WHERE run_id IS NOT NULL AND platform_message_id IS NOT NULL"
            )
        )
        return {f"{channel}/{ts}": int(run_id) for channel, ts, run_id in rows}


@dataclass
class Turn:
    run_id: int
    model: dict[str, Any]  # the stand-in's record of the turn's request
    sent: float
    acked: float
    visible: float
    done: float

    def points(self, marks: dict[int, dict[str, list[float]]]) -> stages.Points:
        found = stages.points(marks.get(self.run_id, {}), self.model, self.sent, self.visible, self.done)
        found["acked"] = self.acked
        return found


async def sequential(sb: SlackBench, n: int) -> list[Turn]:
    """n mentions one after another, the model answering at once."""
    sent: dict[str, tuple[float, float]] = {}
    # The benchmark's own collector pauses (its heap holds the sandbox's record of every call) are not the bot's.
    gc.collect()
    gc.disable()
    try:
        for i in range(n):
            where, at, acked = await sb.mention(SEQUENTIAL, i)
            sent[where] = (at, acked)
            await sb.wait_for({where}, 30)
    finally:
        gc.enable()
    seen = sb.replies()
    runs = await _run_ids(sb.bench)
    # The model is asked the mention's text without the mention: "question N at KIND/s".
    records = {q.split("question ")[-1]: r for q, r in e2e.llm_times(await sb.bench.llm_requests()).items()}
    return [
        Turn(runs[where], records[f"{i} at {SEQUENTIAL}/s"], at, acked, *seen[where])
        for i, (where, (at, acked)) in enumerate(sent.items())
    ]


async def burst(sb: SlackBench, n: int) -> dict[str, Any]:
    """n mentions at once with a 2 s model: replies/s, and CPU per reply by process."""
    me = psutil.Process()
    meter = CpuMeter.of_system(sb.bench.settings.data_dir, [w.pid for w in sb.bench.workers])
    meter.roles["Slack adapter"] = [psutil.Process(sb.adapter.pid)]
    meter.roles["Slack sandbox + load generator"] = meter.roles.pop("intake + load generator", [me])
    before = meter.read()
    started = time.monotonic()
    sent = await asyncio.gather(*(sb.mention(BURST, i) for i in range(n)))
    acked_in = time.monotonic() - started
    seen = await sb.wait_for({where for where, _, _ in sent}, 300)
    cpu = per_item_ms(before, meter.read(), n)
    last = max(seen[where][1] for where, _, _ in sent)
    return {
        "mentions": n,
        "acked in s": round(acked_in, 2),
        "wall s": round(last - started, 2),
        "replies/s": round(n / (last - started), 1),
        "bot CPU ms/reply": round(sum(cpu.get(role, 0.0) for role in BOT_ROLES), 2),
        "cpu": cpu,
    }


async def run(quick: bool = False) -> Result:
    n, load = (50, 200) if quick else (300, 200)
    with tempfile.TemporaryDirectory(prefix="tbb-trace-") as folder:
        path = Path(folder) / "marks"
        trace.configure(path)
        try:
            async with slack_system(WORKER_MAX_JOBS=str(load + 100), **{trace.TRACE_ENV: str(path)}) as sb:
                await sb.bench.set_latency(0.0)
                for i in range(10):  # warm-up: Bolt's auth.test, connection pools, statement caches
                    where, _, _ = await sb.mention(WARMUP, i)
                    await sb.wait_for({where}, 30)
                await sb.bench.set_latency(0.0)
                turns = await sequential(sb, n)
                await asyncio.sleep(0.5)  # the last turn's after-reply stages are still being written
                marks = trace.read(path)
                trace.configure(None)
                await sb.bench.set_latency(2.0)
                capacity = await burst(sb, load)
        finally:
            trace.configure(None)
    rows = stages.table([turn.points(marks) for turn in turns], SLACK_STAGES)
    e2e_s = summary_ms([turn.done - turn.sent for turn in turns])
    ack = summary_ms([turn.acked - turn.sent for turn in turns])
    first = summary_ms([turn.visible - float(turn.model["first_token_at"]) for turn in turns])
    cpu: dict[str, float] = capacity.pop("cpu")
    parts = ", ".join(f"{role} {ms:g}" for role, ms in sorted(cpu.items(), key=lambda item: -item[1]))
    return Result(
        "slack",
        rows,
        targets=[
            _target("e2e at 0 ms model time, through Slack HTTP, p50", e2e_s["p50_ms"], 15),
            _target("e2e at 0 ms model time, through Slack HTTP, p99", e2e_s["p99_ms"], 30),
            _target("first visible text after the model's first token, p50", first["p50_ms"], 5),
            _target(
                f"bot CPU per reply, {load} mentions at once ({', '.join(BOT_ROLES)})", capacity["bot CPU ms/reply"], 15
            ),
        ],
        notes=[
            f"{n} mentions one after another (signed Events API requests to `bot serve slack --http --no-worker`, "
            "a `bot worker`, the Slack sandbox), the model answering at once; sequential ack (sent -> 200) p50 "
            f"{ack['p50_ms']} ms, p99 {ack['p99_ms']} ms (the ack at fixed rates is `bot bench ack`).",
            f"the bot's own stages (whose = bot, ack excluded: it overlaps intake) add up to "
            f"{stages.bot_total_ms(rows[1:])} ms on average.",
            f"{load} mentions at once, model 2 s: {capacity['replies/s']} replies/s, all acked in "
            f"{capacity['acked in s']} s; CPU ms per reply: {parts}.",
        ],
    )


def _target(what: str, measured: float, limit: float) -> str:
    return f"{what} <= {limit:g} ms: {measured} ms ({'met' if measured <= limit else 'NOT met'})"
