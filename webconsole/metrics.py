"""`/metrics`: the process's own counters and histograms (`bot.metrics`), and figures read from Postgres and Redis
at scrape time, which are true for the whole deployment whichever process is scraped: turns by outcome, the queue's
depth, the oldest overdue wake-up, tokens spent and media bytes stored."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from bot.costs.models import TOKEN_USAGE
from bot.media.models import MEDIA
from bot.models import MESSAGES
from bot.runtime import Runtime
from bot.workflows.models import ACTIVE_STATUSES, RUNS
from jobs.queue import QUEUE_NAME

m, r, u, md = MESSAGES.c, RUNS.c, TOKEN_USAGE.c, MEDIA.c


@dataclass
class Snapshot:
    turns: dict[str, int] = field(default_factory=dict)
    runs_active: dict[str, int] = field(default_factory=dict)
    queue_depth: int = 0
    oldest_overdue_s: float = 0.0
    tokens: dict[tuple[str, str], int] = field(default_factory=dict)
    media_bytes: int = 0


async def take_snapshot(runtime: Runtime) -> Snapshot:
    snap = Snapshot()
    async with runtime.autocommit.connect() as conn:
        turns = await conn.execute(select(m.status, func.count()).where(m.role == "user").group_by(m.status))
        snap.turns = {str(status): int(count) for status, count in turns}
        active = await conn.execute(
            select(r.status, func.count()).where(r.status.in_(ACTIVE_STATUSES)).group_by(r.status)
        )
        snap.runs_active = {str(status): int(count) for status, count in active}
        # Runs due but not yet picked up (the index ix_workflow_runs_due serves this): how far behind workers are.
        overdue = await conn.execute(
            select(func.extract("epoch", func.now() - func.min(r.wake_at))).where(
                r.status.in_(("pending", "sleeping", "waiting")), r.wake_at <= func.now()
            )
        )
        snap.oldest_overdue_s = float(overdue.scalar_one() or 0.0)
        tokens = await conn.execute(
            select(u.model, func.sum(u.prompt_tokens), func.sum(u.completion_tokens)).group_by(u.model)
        )
        for model, prompt, completion in tokens:
            snap.tokens[(str(model), "prompt")] = int(prompt or 0)
            snap.tokens[(str(model), "completion")] = int(completion or 0)
        snap.media_bytes = int((await conn.execute(select(func.coalesce(func.sum(md.size), 0)))).scalar_one())
    snap.queue_depth = int(await runtime.redis.zcard(QUEUE_NAME))
    return snap


class SnapshotCollector(Collector):
    def __init__(self, snap: Snapshot) -> None:
        self._snap = snap

    def collect(self) -> Iterator[Metric]:
        snap = self._snap
        turns = CounterMetricFamily("threadbot_turns", "Users' messages answered, by outcome.", labels=["outcome"])
        for outcome in ("completed", "failed"):
            turns.add_metric([outcome], snap.turns.get(outcome, 0))
        yield turns
        waiting = GaugeMetricFamily("threadbot_turns_in_flight", "Users' messages not yet answered.", labels=["status"])
        for status in ("pending", "processing"):
            waiting.add_metric([status], snap.turns.get(status, 0))
        yield waiting
        runs = GaugeMetricFamily("threadbot_runs_active", "Unfinished workflow runs, by status.", labels=["status"])
        for status in ACTIVE_STATUSES:
            runs.add_metric([status], snap.runs_active.get(status, 0))
        yield runs
        yield GaugeMetricFamily("threadbot_queue_depth", "Wake-up jobs in the arq queue.", value=snap.queue_depth)
        yield GaugeMetricFamily(
            "threadbot_oldest_pending_wakeup_seconds",
            "How long the most overdue wake-up of a run has been due (0: none overdue).",
            value=snap.oldest_overdue_s,
        )
        tokens = CounterMetricFamily("threadbot_llm_tokens", "Tokens of model calls.", labels=["model", "kind"])
        for (model, kind), count in sorted(snap.tokens.items()):
            tokens.add_metric([model, kind], count)
        yield tokens
        yield CounterMetricFamily("threadbot_media_bytes", "Bytes of media files taken in.", value=snap.media_bytes)


async def metrics_text(runtime: Runtime) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(await take_snapshot(runtime)))
    return generate_latest(REGISTRY) + generate_latest(registry)
