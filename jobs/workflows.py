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
from bot.workflows.sweeper import sweep

log = structlog.get_logger(__name__)


async def resume_run(ctx: dict[str, Any], run_id: int, seq: int) -> str:
    mark("job", run_id)
    deps: WorkerDeps = ctx["deps"]
    workflows: Workflows = ctx["workflows"]
    attempt: int = ctx.get("job_try", 1)
    owner = f"{deps.worker_id}:{ctx.get('job_id', '?')}:{attempt}"
    try:
        return await engine.resume(deps, workflows, run_id, seq, owner)
    except INFRASTRUCTURE_ERRORS as exc:
        delay = min(30.0, 0.5 * 2 ** min(attempt, 6)) * random.uniform(0.8, 1.2)  # noqa: S311 (jitter)
        log.warning("run bookkeeping failed; retrying the job", run_id=run_id, error=str(exc), retry_in_s=delay)
        with contextlib.suppress(*INFRASTRUCTURE_ERRORS):  # if this fails too, the lease simply expires
            await store.release(deps.runtime, run_id, owner)
        raise Retry(defer=delay) from exc


async def sweep_forever(deps: WorkerDeps) -> None:
    """Sweep at start-up and then every WORKFLOW_SWEEP_INTERVAL_S; errors are logged and the loop goes on."""
    interval = deps.runtime.settings.workflow_sweep_interval_s
    while True:
        try:
            await sweep(deps.runtime)
        except INFRASTRUCTURE_ERRORS as exc:
            log.warning("sweep failed; trying again later", error=str(exc))
        await asyncio.sleep(interval)
