"""The per-stage table of a sequential e2e run: how long each stage of the durable path took, from the marks the
bot's processes write (`bot.trace`), the stand-in LLM's record of each request and what the benchmark saw arrive.

Each stage runs from one point of a turn to the next; a point is a mark (its first or last occurrence in the turn),
a stand-in time or a benchmark time, all on time.monotonic(). Stages are listed in the order they happen on the
path; their p50s add up to about the turn's p50 (percentiles do not add exactly).
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bench import e2e
from bench.harness import system
from bench.report import Result, summary_ms
from bot import trace

Points = dict[str, float]


@dataclass(frozen=True)
class Stage:
    name: str
    start: str
    end: str
    what: str
    # bot: the bot's own time on the way to the reply; model: the stand-in's; after: once the reply is seen.
    kind: Literal["bot", "model", "after"] = "bot"


# The points: `sent`/`visible`/`done` are the benchmark's; `model:*` the stand-in's; the rest are bot.trace marks
# (`first:`/`last:` pick an occurrence when a mark is made more than once in a turn).
STAGES = [
    Stage("intake", "sent", "persisted", "guards, then the message, thread and run written in one statement"),
    Stage("enqueue", "persisted", "enqueued", "the wake-up job written to Redis (one EVAL)"),
    Stage("wake-up", "enqueued", "job", "an idle worker's BLPOP returns, it reads the queue and starts the job"),
    Stage("claim", "job", "claimed", "the run's lease taken and its steps read"),
    Stage("context", "claimed", "step:context:saved", "message claimed, thread event sent, prompt gathered, saved"),
    Stage("to model", "step:context:saved", "llm:request", "reply step starts: working status, stream opened"),
    Stage("request", "llm:request", "model:at", "the HTTP request reaches the model"),
    Stage("model", "model:at", "model:first", "the model's own time to its first token", "model"),
    Stage("first token in", "model:first", "first:llm:delta", "the first token read by the worker"),
    Stage("first post", "first:llm:delta", "first:post", "outbox intent written, first text posted"),
    Stage("first visible", "first:post", "visible", "posted text seen on the platform (negative: seen first)"),
    Stage("rest of model", "model:first", "model:done", "the model's own time for the rest", "model"),
    Stage("full text", "model:done", "shown", "the rest read, the full text shown (posted whole, or the last edit)"),
    Stage("seen", "shown", "done", "the full reply seen on the platform"),
    Stage("reply saved", "shown", "step:reply:saved", "outbox sent row and the reply step's row", "after"),
    Stage("store", "step:reply:saved", "step:store:saved", "the reply stored as a message of the thread", "after"),
    Stage("finish", "step:store:saved", "finished", "the run marked completed", "after"),
]


def points(marks: dict[str, list[float]], model: dict[str, Any], sent: float, visible: float, done: float) -> Points:
    """One turn's points by name."""
    found: Points = {"sent": sent, "visible": visible, "done": done}
    for name, times in marks.items():
        found[name] = times[0]
        found[f"first:{name}"] = times[0]
        found[f"last:{name}"] = times[-1]
    # The full text was shown by the last post or edit, whichever came later (a reply posted whole has no edit).
    shown = [found[name] for name in ("last:post", "last:edit") if name in found]
    if shown:
        found["shown"] = max(shown)
    for point, key in (("model:at", "at"), ("model:first", "first_token_at"), ("model:done", "done_at")):
        if model.get(key) is not None:
            found[point] = float(model[key])
    return found


def table(turns: list[Points], stages: list[Stage] = STAGES) -> list[dict[str, Any]]:
    """A row per stage: p50/p99/mean over the turns that reached both its points."""
    rows = []
    for stage in stages:
        spans = [turn[stage.end] - turn[stage.start] for turn in turns if stage.start in turn and stage.end in turn]
        summary = summary_ms(spans)
        rows.append(
            {
                "stage": stage.name,
                "whose": stage.kind,
                "p50_ms": summary["p50_ms"],
                "p99_ms": summary["p99_ms"],
                "mean_ms": summary["mean_ms"],
                "n": summary["n"],
                "from -> to": f"{stage.start} -> {stage.end}",
            }
        )
    return rows


def bot_total_ms(rows: list[dict[str, Any]]) -> float:
    """The sum of the bot's own stage means on the way to the reply being seen (the model's and after excluded)."""
    return round(sum(float(row["mean_ms"]) for row in rows if row["whose"] == "bot"), 3)


async def run(quick: bool = False) -> Result:
    """Sequential turns at 0 ms model time through the console platform, every process marking its stages."""
    n = 50 if quick else 300
    with tempfile.TemporaryDirectory(prefix="tbb-trace-") as folder:
        path = Path(folder) / "marks"
        trace.configure(path)
        try:
            async with system(1, **{trace.TRACE_ENV: str(path)}) as bench:
                await bench.set_latency(0.0)
                await e2e.sequential(bench, "warmup", 10)
                await bench.set_latency(0.0)
                seen: dict[str, e2e.Seen] = {}
                e2e_s, _, overhead, _ = await e2e.sequential(bench, "stages", n, seen)
                records = e2e.llm_times(await bench.llm_requests())
                # The last turn's after-reply stages are still being written when its reply is seen.
                await asyncio.sleep(0.5)
        finally:
            trace.configure(None)
        marks = trace.read(path)
    turns = [
        points(marks.get(s.run_id, {}), records[f"{name} question"], s.sent_at, s.first_at, s.done_at)
        for name, s in seen.items()
    ]
    rows = table(turns)
    return Result(
        "stages",
        rows,
        targets=[
            f"e2e at 0 ms model time p50 <= 15 ms: {summary_ms(e2e_s)['p50_ms']} ms; "
            f"p99 <= 30 ms: {summary_ms(e2e_s)['p99_ms']} ms (overhead p50 {summary_ms(overhead)['p50_ms']} ms)"
        ],
        notes=[
            f"{n} turns one after another through the console platform, the model answering at once; the bot's own "
            f"stages (whose = bot) add up to {bot_total_ms(rows)} ms on average.",
            "after: stages that run once the reply is seen; in a sequential run they overlap the next turn's start.",
        ],
    )
