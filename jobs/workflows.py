"""The one job: `resume_run(run_id, seq)` hands a run to `bot.workflows.engine`. Jobs stay thin; the engine
keeps everything in Postgres. The sweeper runs beside the jobs in every worker."""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any

import structlog
from arq import Retry

from bot.deps import WorkerDeps
from bot.trace import mark
from bot.workflows import engine, store
from bot.workflows.engine import INFRASTRUCTURE_ERRORS
from bot.workflows.registry import Workflows
from bot.workflows.runs import enqueue_run
from bot.workflows.sweeper import rescue_dead, sweep

log = structlog.get_logger(__name__)


async def resume_run(ctx: dict[str, Any], run_id: int, seq: int) -> str:
    mark("job", run_id)
    deps: WorkerDeps = ctx["deps"]
    workflows: Workflows = ctx["workflows"]
    attempt: int = ctx.get("job_try", 1)
    owner = f"{deps.worker_id}:{ctx.get('job_id', '?')}:{attempt}"
    try:
        return await engine.resume(deps, workflows, run_id, seq, owner)
    except asyncio.CancelledError:
        # The worker is stopping (SIGTERM, SIGINT) or the job ran out of time: the run is handed back now, so
        # another worker resumes it at once instead of when the lease runs out. What it posted is in the outbox.
        await asyncio.shield(_hand_back(deps, run_id, owner))
        raise
    except INFRASTRUCTURE_ERRORS as exc:
        delay = min(30.0, 0.5 * 2 ** min(attempt, 6)) * random.uniform(0.8, 1.2)  # noqa: S311 (jitter)
        log.warning("run bookkeeping failed; retrying the job", run_id=run_id, error=str(exc), retry_in_s=delay)
        with contextlib.suppress(*INFRASTRUCTURE_ERRORS):  # if this fails too, the lease simply expires
            await store.release(deps.runtime, run_id, owner)
        raise Retry(defer=delay) from exc


async def _hand_back(deps: WorkerDeps, run_id: int, owner: str) -> None:
    runtime = deps.runtime
    try:
        parked = await store.park(runtime, run_id, owner, "pending", runtime.clock.now())
        if parked is not None:
            await enqueue_run(runtime, run_id, *parked)
            log.info("run handed back on shutdown", run_id=run_id)
    except INFRASTRUCTURE_ERRORS as exc:  # then the lease runs out and the sweeper rescues it, as after a crash
        log.warning("could not hand the run back; it is rescued when its lease runs out", error=str(exc))


async def sweep_forever(deps: WorkerDeps) -> None:
    """Sweep at start-up and then every WORKFLOW_SWEEP_INTERVAL_S; in between, every third of a lease, hand dead
    workers' runs on (`rescue_dead`), so a reply cut by a crash resumes within seconds. Errors are logged and the
    loop goes on."""
    settings = deps.runtime.settings
    interval = settings.workflow_sweep_interval_s
    tick = min(interval, settings.workflow_lease_s / 3)
    next_sweep = 0.0
    loop = asyncio.get_running_loop()
    while True:
        try:
            if loop.time() >= next_sweep:
                next_sweep = loop.time() + interval
                await sweep(deps.runtime)
            else:
                await rescue_dead(deps.runtime)
        except INFRASTRUCTURE_ERRORS as exc:
            log.warning("sweep failed; trying again later", error=str(exc))
        await asyncio.sleep(tick)
