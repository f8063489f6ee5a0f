"""e2e, first-token and capacity: events in through intake, replies watched at the platform (the console
streams), a `bot worker` process and the stand-in LLM in processes of their own.

Times on both sides are time.monotonic(), one clock for every process on the machine, so the model's own time
(from the stand-in's records) can be subtracted from each turn: what is left is the bot's overhead.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Any

import psutil

from adapters.console.inbound import console_thread, to_event
from adapters.console.outbound import stream_key
from bench.cpu import CpuMeter, per_item_ms
from bench.harness import Bench, system
from bench.report import Result, summary_ms
from bot.intake import accept

BURST_RUNS = 3
# The stand-in's default reply ends with this, so the watcher knows a reply is complete.
REPLY_END = b"not a real model."


@dataclass
class Seen:
    sent_at: float
    run_id: int = 0
    first_at: float = 0.0
    done_at: float = 0.0


async def watch(bench: Bench, seen: dict[str, Seen], timeout_s: float) -> None:
    """Follow every thread's stream until each reply is complete; note when it first showed and when it ended."""
    redis = bench.runtime.redis
    cursors: dict[Any, Any] = {}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        waiting = {stream_key(console_thread(t)): t for t, s in seen.items() if not s.done_at}
        if not waiting:
            return
        streams: dict[Any, Any] = {key: cursors.get(key, "0-0") for key in waiting}
        batches = await redis.xread(streams, count=100, block=100)
        now = time.monotonic()
        for key, entries in batches or []:
            name = waiting[key.decode() if isinstance(key, bytes) else key]
            for entry_id, fields in entries:
                cursors[stream_key(console_thread(name))] = entry_id
                state = seen[name]
                state.first_at = state.first_at or now
                if fields[b"text"].endswith(REPLY_END):
                    state.done_at = now
    raise TimeoutError(f"{sum(1 for s in seen.values() if not s.done_at)} replies did not arrive in {timeout_s} s")


def llm_times(requests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The stand-in's record of each turn, keyed by the thread's question."""
    return {r["body"]["messages"][-1]["content"]: r for r in requests if r["path"].endswith("/chat/completions")}


async def sequential(
    bench: Bench, prefix: str, n: int, seen: dict[str, Seen] | None = None
) -> tuple[list[float], list[float], list[float], list[float]]:
    """n turns one after another: end-to-end, model time, overhead, and first-token-to-first-visible gaps. `seen`:
    filled with each turn's times, for a caller that wants them turn by turn."""
    seen = {} if seen is None else seen
    for i in range(n):
        name = f"{prefix}-{i}"
        seen[name] = Seen(sent_at=time.monotonic())
        accepted = await accept(bench.runtime, to_event(f"{name} question", name, user=f"user-{i % 50}"))
        seen[name].run_id = accepted.run_id
        await watch(bench, {name: seen[name]}, timeout_s=30)
    records = llm_times(await bench.llm_requests())
    e2e, llm, overhead, first_gap = [], [], [], []
    for name, state in seen.items():
        record = records[f"{name} question"]
        model_time = record["done_at"] - record["at"]
        e2e.append(state.done_at - state.sent_at)
        llm.append(model_time)
        overhead.append(state.done_at - state.sent_at - model_time)
        first_gap.append(state.first_at - record["first_token_at"])
    return e2e, llm, overhead, first_gap


async def burst(bench: Bench, n: int, label: str = "") -> dict[str, Any]:
    """n conversations at once: how many the worker holds in flight and how fast replies come back."""
    seen = {f"load-{label}-{i}": Seen(sent_at=0.0) for i in range(n)}
    worker = psutil.Process(bench.workers[0].pid)
    rss_before = peak_rss = worker.memory_info().rss

    async def sample_rss() -> None:
        nonlocal peak_rss
        while True:
            peak_rss = max(peak_rss, worker.memory_info().rss)
            await asyncio.sleep(0.1)

    sampler = asyncio.create_task(sample_rss())
    meter = CpuMeter.of_system(bench.settings.data_dir, [w.pid for w in bench.workers])
    cpu_before = meter.read()
    watcher = asyncio.create_task(watch(bench, seen, timeout_s=300))
    started = time.monotonic()
    gate = asyncio.Semaphore(100)

    async def send(name: str) -> None:
        async with gate:
            seen[name].sent_at = time.monotonic()
            await accept(bench.runtime, to_event(f"{name} question", name, user=name))

    await asyncio.gather(*(send(name) for name in seen))
    accepted_in = time.monotonic() - started
    await watcher
    cpu_ms = per_item_ms(cpu_before, meter.read(), n)
    sampler.cancel()
    last = max(s.done_at for s in seen.values())
    records = llm_times(await bench.llm_requests())
    marks = sorted([(r["at"], 1) for r in records.values()] + [(r["done_at"], -1) for r in records.values()])
    in_flight = peak = 0
    for _, step in marks:
        in_flight += step
        peak = max(peak, in_flight)
    overhead = [s.done_at - s.sent_at - (records[f"{k} question"]["done_at"] - records[f"{k} question"]["at"])
                for k, s in seen.items()]  # fmt: skip
    return {
        "conversations": n,
        "intake s": round(accepted_in, 2),
        "wall s": round(last - started, 2),
        "replies/s": round(n / (last - started), 1),
        "peak in flight": peak,
        "worker RSS growth MiB": round((peak_rss - rss_before) / 2**20, 1),
        **{f"overhead {k}": v for k, v in summary_ms(overhead).items() if k in ("p50_ms", "p99_ms")},
        "worker CPU ms/reply": cpu_ms["worker"],
        "all CPU ms/reply": round(sum(cpu_ms.values()), 2),
        "cpu": cpu_ms,
    }


async def run_e2e(quick: bool = False) -> Result:
    n, load = (50, 200) if quick else (300, 1000)
    async with system(WORKER_MAX_JOBS=str(load + 200)) as bench:
        await bench.set_latency(0.0)
        await sequential(bench, "warmup", 10)
        await bench.set_latency(0.0)
        e2e, llm, overhead, _ = await sequential(bench, "e2e0", n)
        await bench.set_latency(2.0)
        e2e2, llm2, overhead2, _ = await sequential(bench, "e2e2", max(10, n // 20))
        await bench.set_latency(2.0)
        # This machine's speed varies by a third from run to run: the median of several bursts, each one listed.
        bursts = [await burst(bench, load, f"2s-{i}") for i in range(1 if quick else BURST_RUNS)]
        capacity = sorted(bursts, key=lambda b: float(b["replies/s"]))[len(bursts) // 2]
        capacity["replies/s each"] = " ".join(f"{b['replies/s']:g}" for b in bursts)
        # The first burst grows the heap and later ones reuse it: the most any burst added is the honest figure.
        capacity["worker RSS growth MiB"] = max(float(b["worker RSS growth MiB"]) for b in bursts)
        capacity["worker CPU ms/reply each"] = " ".join(f"{b['worker CPU ms/reply']:g}" for b in bursts)
        # Holding capacity apart from throughput: with a slow model, how many turns one worker keeps open at once.
        await bench.set_latency(10.0)
        holding = await burst(bench, load, "10s")
    row0 = {"LLM latency": "0 ms", "e2e p50_ms": summary_ms(e2e)["p50_ms"], "llm p50_ms": summary_ms(llm)["p50_ms"],
            "overhead p50_ms": summary_ms(overhead)["p50_ms"], "overhead p99_ms": summary_ms(overhead)["p99_ms"],
            "n": len(e2e)}  # fmt: skip
    row2 = {"LLM latency": "2 s", "e2e p50_ms": summary_ms(e2e2)["p50_ms"], "llm p50_ms": summary_ms(llm2)["p50_ms"],
            "overhead p50_ms": summary_ms(overhead2)["p50_ms"], "overhead p99_ms": summary_ms(overhead2)["p99_ms"],
            "n": len(e2e2)}  # fmt: skip
    p50, p99 = summary_ms(overhead)["p50_ms"], summary_ms(overhead)["p99_ms"]
    cpu: dict[str, float] = capacity.pop("cpu")
    holding.pop("cpu")
    return Result(
        "e2e",
        [row0, row2, {"LLM latency": "2 s, burst", **capacity}, {"LLM latency": "10 s, burst", **holding}],
        targets=[
            f"overhead p50 <= 15 ms: {p50} ms ({'met' if p50 <= 15 else 'NOT met'}); "
            f"p99 <= 60 ms: {p99} ms ({'met' if p99 <= 60 else 'NOT met'})",
            f">= 1,000 conversations in flight per worker at 2 s: peak {capacity['peak in flight']} "
            f"({'met' if capacity['peak in flight'] >= 1000 else 'NOT met'}); >= 250 replies/s: "
            f"{capacity['replies/s']} ({'met' if capacity['replies/s'] >= 250 else 'NOT met'})",
        ],
        notes=[
            "overhead = end-to-end (intake call to the complete reply seen on the platform stream) minus the "
            "stand-in's own time for that request; one `bot worker` process, default settings.",
            "2 s, burst: the median of the bursts by replies/s (each burst's figure listed); its CPU note below.",
            cpu_note(cpu),
        ],
    )


def cpu_note(cpu: dict[str, float]) -> str:
    """Who paid for the 2 s burst's replies, and the ceiling that puts on this machine."""
    total = sum(cpu.values())
    cores = os.cpu_count() or 1
    parts = ", ".join(f"{role} {ms:g}" for role, ms in sorted(cpu.items(), key=lambda item: -item[1]))
    others = total - cpu["worker"]
    return (
        f"CPU ms per reply in the 2 s burst: {parts}; {total:.1f} ms in all. So {cores} cores pass at most "
        f"{cores * 1000 / total:.0f} replies/s with this load generator and these stand-ins on them; one core of "
        f"worker at most {1000 / cpu['worker']:.0f}; and the processes besides the worker ({others:.1f} ms) would "
        f"cap {cores} cores at {cores * 1000 / others:.0f} even if the worker cost nothing."
    )


async def run_first_token(quick: bool = False) -> Result:
    n = 30 if quick else 200
    async with system() as bench:
        await bench.set_latency(0.05, token_delay=0.02)
        _, _, _, gaps = await sequential(bench, "ft", n)
    s = summary_ms(gaps)
    return Result(
        "first-token",
        [{"from": "stand-in's first token", "to": "first visible update on the platform stream", **s}],
        notes=["the stand-in waits 50 ms before the first token and 20 ms between tokens"],
    )
