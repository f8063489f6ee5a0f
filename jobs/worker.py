"""arq worker: `WorkerSettings` and the clients a worker process shares, built on start-up and closed on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import secrets
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, ClassVar

import structlog
from arq import Worker
from arq.connections import ArqRedis, create_pool
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.catalog import WORKFLOWS
from bot.chains.library import load_library
from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.db import create_engine, require_current_schema, session_factory
from bot.deps import WorkerDeps
from bot.followups.scheduler import SchedulerLeader
from bot.llm import OpenAILLM
from bot.media.blobs import S3BlobStore, blob_store_for
from bot.media.index import require_dimensions
from bot.runtime import Runtime, redis_settings
from bot.safety.guarded import GuardedLLM
from bot.safety.moderation import OpenAIModerator
from bot.workflows.registry import Workflows
from jobs.platforms import open_platform_clients
from jobs.queue import QUEUE_NAME, WAKE_KEY, ArqWakeQueue
from jobs.stand_ins import open_mailer, open_stand_in_llm, open_transcriber
from jobs.workflows import resume_run, sweep_forever

log = structlog.get_logger(__name__)


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    redis: ArqRedis = ctx["redis"]
    engine: AsyncEngine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
    await require_current_schema(engine)
    await require_dimensions(engine, settings.embedding_dimensions)
    runtime = Runtime(
        settings=settings,
        engine=engine,
        sessions=session_factory(engine),
        redis=redis,
        queue=ArqWakeQueue(redis),
        clock=ctx.get("clock") or SystemClock(),  # a test's FakeClock, shared with the test's own runtime
    )

    stack = AsyncExitStack()
    ctx["clients"] = stack
    stand_in_url = None
    if settings.uses_stand_in_llm:
        stand_in_url = await open_stand_in_llm(stack, announced=bool(ctx.get("stand_in_announced")))
    llm = OpenAILLM.from_settings(settings, stand_in_url=stand_in_url)
    clients = await open_platform_clients(settings, redis, stack)
    ctx["llm"] = llm
    moderator = None
    if settings.moderation != "off":
        moderator = OpenAIModerator(
            api_key=settings.openai_api_key.get_secret_value() or "no-key",
            base_url=settings.moderation_base_url or settings.openai_base_url or stand_in_url,
            model=settings.moderation_model,
            timeout_s=settings.openai_timeout_s,
        )
        stack.push_async_callback(moderator.aclose)
    # A broken chain file stops the worker here, with every problem listed, instead of failing users later.
    load_library(settings)
    blobs = blob_store_for(settings)
    stack.callback(blobs.close)
    if isinstance(blobs, S3BlobStore):
        await blobs.ensure_bucket()
    transcriber = await open_transcriber(settings, stack)
    mailer = await open_mailer(settings, stack)
    deps = WorkerDeps(
        runtime=runtime,
        llm=GuardedLLM.wrap(llm, settings, moderator),
        platforms=clients.chat,
        files=clients.files,
        blobs=blobs,
        transcriber=transcriber,
        mailer=mailer,
        worker_id=worker_id(),
    )
    ctx["deps"] = deps
    ctx["sweeper"] = asyncio.create_task(sweep_forever(deps))
    ctx["scheduler"] = asyncio.create_task(SchedulerLeader(runtime).run_forever())
    log.info("worker ready", max_jobs=settings.worker_max_jobs, platforms=sorted(clients.chat))


# Young collections after this many new container objects instead of CPython's 700, and full ones rarer. Measured
# over 300 turns and a burst of 1,000 (after start-up, two runs each): the defaults made 431-439 collections taking
# 1.04-1.07 s, 0.59 s of it in full ones; these made 27-32 taking 0.30-0.31 s, none full, and the burst's worker CPU
# per reply went from 15.5-16.3 ms to 12.1-12.2 ms.
GC_THRESHOLDS = (10_000, 20, 20)


def settle_garbage_collector() -> None:
    """For the long-running processes (`bot worker`, `bot serve`), called once their modules are imported. Collect less
    often: a turn allocates thousands of short-lived objects, nearly all freed by reference counting as soon as they
    go, and each collection walked the worker's large heap (SQLAlchemy, the SDKs) for little."""
    gc.collect()
    gc.set_threshold(*GC_THRESHOLDS)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


async def shutdown(ctx: dict[str, Any]) -> None:
    for task in ("sweeper", "scheduler"):
        if task in ctx:
            ctx[task].cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ctx[task]
    if "clients" in ctx:
        await ctx["clients"].aclose()
    if "llm" in ctx:
        await ctx["llm"].aclose()
    if "deps" in ctx:
        await ctx["deps"].leases.close()
        await ctx["deps"].runtime.engine.dispose()


class WakeableWorker(Worker):
    """arq's worker, woken by intake instead of only polling on a timer.

    arq sleeps `poll_delay` between queue reads, which adds half that delay to every turn on average, and a short
    delay costs CPU while idle. Here the idle wait is a BLPOP on a wake-up list that `bot.intake` pushes to with
    each job: a new turn is picked up at once, and the poll delay is only the fallback for deferred retries and
    cron. The body is arq 0.28's `Worker.main` (the version is pinned) with `poll()` replaced by that wait.
    """

    async def main(self) -> None:
        if self._pool is None:
            self._pool = await create_pool(
                self.redis_settings,
                job_deserializer=self.job_deserializer,
                job_serializer=self.job_serializer,
                default_queue_name=self.queue_name,
                expires_extra_ms=self.expires_extra_ms,
            )
        self.ctx["redis"] = self.pool
        if self.on_startup:
            await self.on_startup(self.ctx)
        while True:
            await self._poll_iteration()
            if self.burst:
                if 0 <= self.max_burst_jobs <= self._jobs_started():
                    await asyncio.gather(*self.tasks.values())
                    return None
                if await self.pool.zcard(self.queue_name) == 0:
                    await asyncio.gather(*self.tasks.values())
                    return None
            # Redis >= 6 takes a fractional timeout; redis-py's blpop() is typed for whole seconds only.
            woke = await self.pool.execute_command("BLPOP", WAKE_KEY, f"{self.poll_delay_s:g}")  # type: ignore[no-untyped-call]
            spare = self.max_jobs - self.job_counter - 1
            if woke is not None and spare > 0:
                # A burst leaves one signal per job. Each job was queued before its signal, so the next poll sees
                # every one already here: take as many signals as this worker can take jobs, instead of one poll
                # per signal; the rest wake other workers.
                await self.pool.execute_command("LTRIM", WAKE_KEY, spare, -1)  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        """arq's, except that the jobs its signal handler cancelled are waited for with `return_exceptions`: arq's
        own gather raised the first job's CancelledError, so `on_shutdown` never ran and every client it closes
        (HTTP sessions to Slack, Postgres, the stand-ins) was left open."""
        if not self._handle_signals:
            self.handle_sig(signal.SIGUSR1)
        if not self._pool:
            return
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        await self.pool.delete(self.health_check_key)
        if self.on_shutdown:
            await self.on_shutdown(self.ctx)
        await self.pool.close(close_connection_pool=True)
        self._pool = None

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """arq's, minus the jobs this worker is already running. A job stays in the queue until it finishes, and
        arq checks each id it reads (three Redis round trips) on every poll: with hundreds of turns in flight the
        worker spent more on polling than on the turns."""
        running = self.tasks
        await super().start_jobs([j for j in job_ids if (t := running.get(j.decode())) is None or t.done()])


class WorkerSettings:
    """The worker's fixed shape. Run it with `bot worker`: `create_worker` adds what comes from `Settings` (Redis
    URL, concurrency); the sweeper starts in `startup`."""

    functions: ClassVar = [resume_run]
    on_startup = startup
    on_shutdown = shutdown
    queue_name = QUEUE_NAME
    # Steps retry themselves (as new wake-ups of their run); arq's retries only cover the engine's bookkeeping.
    max_tries = 50
    job_timeout = 900
    # Every wake-up of a run has its own job id (`run:{id}:{seq}`), so results need not be kept for dedupe.
    keep_result = 60


def create_worker(settings: Settings, *, workflows: Workflows = WORKFLOWS, **overrides: Any) -> Worker:
    """The worker for these settings, running `workflows` (the bot's own unless told otherwise)."""
    options: dict[str, Any] = {
        "functions": WorkerSettings.functions,
        "on_startup": WorkerSettings.on_startup,
        "on_shutdown": WorkerSettings.on_shutdown,
        "queue_name": WorkerSettings.queue_name,
        "max_tries": WorkerSettings.max_tries,
        "job_timeout": WorkerSettings.job_timeout,
        "keep_result": WorkerSettings.keep_result,
        "redis_settings": redis_settings(settings.redis_url),
        "max_jobs": settings.worker_max_jobs,
        "poll_delay": settings.worker_poll_delay_s,
        "ctx": {"settings": settings},
    }
    options.update(overrides)
    options["ctx"] = {**options["ctx"], "workflows": workflows}
    return WakeableWorker(**options)


@asynccontextmanager
async def in_process_worker(
    settings: Settings, *, workflows: Workflows = WORKFLOWS, clock: Clock | None = None
) -> AsyncIterator[asyncio.Task[None]]:
    """Run the production arq worker in this process, for the single-command embedded default (and tests, which
    hand it their clock)."""
    context = {"settings": settings, "stand_in_announced": True, "clock": clock}
    worker = create_worker(settings, workflows=workflows, handle_signals=False, ctx=context)
    task = asyncio.create_task(worker.async_run())
    try:
        yield task
    finally:
        # Burst mode with no jobs left to start is arq's own way out of its poll loop: running jobs finish and
        # the loop returns, instead of being cancelled half-way through a Redis pipeline.
        worker.burst = True
        worker.max_burst_jobs = 0
        with contextlib.suppress(Exception):  # a worker that died or hangs is dealt with by close() below
            await asyncio.wait_for(asyncio.shield(task), timeout=30)
        await worker.close()
        await asyncio.gather(task, return_exceptions=True)
