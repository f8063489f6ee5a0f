"""Resuming a run: claim its lease, replay the workflow function against its stored steps, and park, finish or
fail it. Called by the `resume_run` job; everything it needs to know is in Postgres."""

from __future__ import annotations

import structlog
from redis.exceptions import RedisError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from bot import trace
from bot.deps import WorkerDeps
from bot.workflows import data, store
from bot.workflows.errors import InvalidWorkflowInput, RunAborted, StepFailed, Suspend
from bot.workflows.events import send_event
from bot.workflows.registry import Workflows
from bot.workflows.runs import enqueue_run
from bot.workflows.steps import WorkflowContext

log = structlog.get_logger(__name__)

# Failures of the engine's own database and Redis calls: transient, retried by the job (see jobs.workflows).
INFRASTRUCTURE_ERRORS = (OperationalError, InterfaceError, PoolTimeout, RedisError, OSError)


async def resume(deps: WorkerDeps, workflows: Workflows, run_id: int, seq: int, owner: str) -> str:
    """Advance the run as far as it can go now. Returns what became of it: skipped (not ours to run), the
    status it was parked in, completed, failed, or aborted (cancelled or lease lost meanwhile).

    Database and Redis errors of the engine's own bookkeeping propagate: the job retries, and the lease it may
    still hold expires or is released by the caller."""
    runtime = deps.runtime
    settings = runtime.settings
    run = await store.claim(runtime, run_id, seq, owner, settings.workflow_lease_s)
    if run is None:
        return "skipped"
    trace.current_run.set(run_id)
    trace.mark("claimed")
    workflow = workflows.get(run.workflow)
    if workflow is None:
        await _finish(deps, run_id, owner, "failed", error=f"no workflow named {run.workflow!r} in this worker")
        return "failed"
    try:
        input = workflow.decode(run.input)
    except InvalidWorkflowInput as exc:
        # Stored by a start that did not check it (by name), or by a version whose input type differed.
        await _finish(deps, run_id, owner, "failed", error=str(exc)[:4000])
        return "failed"
    ctx = WorkflowContext(
        deps,
        run,
        owner,
        workflow_name=workflow.name,
        max_step_attempts=workflow.max_step_attempts,
        exhausted=run.rescues > settings.workflow_max_rescues,
    )
    structlog.contextvars.bind_contextvars(run_id=run_id, workflow=run.workflow)
    deps.leases.hold(owner, lambda: _lease_lost(ctx))
    try:
        output = data.to_json(await workflow.fn(ctx, input))
    except Suspend as suspend:
        parked = await store.park(runtime, run_id, owner, suspend.status, suspend.wake_at, suspend.wait_step)
        if parked is None:
            return "aborted"
        new_seq, wake_at = parked
        if wake_at is not None:
            await enqueue_run(runtime, run_id, new_seq, wake_at)
        log.debug("run parked", status=suspend.status, wake_at=wake_at)
        return suspend.status
    except RunAborted as aborted:
        log.info("run stopped", reason=str(aborted))
        return "aborted"
    except StepFailed as failed:
        await _finish(deps, run_id, owner, "failed", error=str(failed))
        return "failed"
    except INFRASTRUCTURE_ERRORS:
        raise  # the engine's own bookkeeping: the job retries
    except Exception as exc:
        # A bug in the workflow's code outside any step: retrying would fail the same way, so the run ends here
        # (rather than being rescued again and again) and the operator gets the traceback.
        log.exception("workflow code raised outside a step")
        await _finish(deps, run_id, owner, "failed", error=f"{type(exc).__name__}: {exc}"[:4000])
        return "failed"
    else:
        await _finish(deps, run_id, owner, "completed", output=output)
        trace.mark("finished")
        return "completed"
    finally:
        await ctx.pending.settle(quiet=True)  # a post made outside any step is still recorded before the run moves on
        deps.leases.drop(owner)
        structlog.contextvars.unbind_contextvars("run_id", "workflow")


async def _finish(
    deps: WorkerDeps, run_id: int, owner: str, status: str, output: object = None, error: str | None = None
) -> None:
    finished, parent = await store.finish(deps.runtime, run_id, owner, status, output, error)
    if not finished:
        return
    # Every chat turn is a run: a completed one is routine (debug), anything else the operator should see.
    (log.debug if status == "completed" else log.info)("run finished", status=status, error=error)
    if parent is not None:  # an `invoke` waits for this
        await send_event(
            deps.runtime,
            "run.finished",
            {"run_id": run_id, "status": status, "output": output, "error": error},
            dedupe_key=f"finished:{run_id}",
        )


def _lease_lost(ctx: WorkflowContext) -> None:
    ctx.lease_lost = True
    log.warning("run lease lost or run cancelled; stopping at the next step", workflow=ctx.workflow_name)
