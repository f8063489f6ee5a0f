"""RUN_RETENTION_DAYS: the sweeper forgets the steps, waits and outbox rows of runs that finished long ago, and
nothing of a run that is still active or finished recently; a pruned run cannot be retried."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy import func, insert, select

from bot.runtime import Runtime
from bot.workflows.models import OUTBOX, RUNS, STEPS, WAITS
from bot.workflows.runs import retry_run
from bot.workflows.sweeper import prune_finished_runs


async def _run(rt: Runtime, status: str, age_days: float | None) -> int:
    finished = None if age_days is None else func.now() - timedelta(days=age_days)
    async with rt.autocommit.connect() as conn:
        run_id = (
            await conn.execute(
                insert(RUNS)
                .values(
                    workflow="reminder",
                    input={},
                    status=status,
                    wake_seq=0,
                    wake_at=func.now(),
                    attempts=1,
                    rescues=0,
                    finished_at=finished,
                    created_at=func.now() - timedelta(days=age_days or 40),
                )
                .returning(RUNS.c.id)
            )
        ).scalar_one()
        await conn.execute(
            insert(STEPS).values(
                run_id=run_id,
                step_id="wait",
                kind="sleep",
                status="completed",
                output={"big": "x" * 1000},
                attempts=1,
                started_at=func.now() - timedelta(days=40),
            )
        )
        await conn.execute(
            insert(WAITS).values(run_id=run_id, step_id="quiet", event_name="thread.message", match={}, state="matched")
        )
        await conn.execute(
            insert(OUTBOX).values(key=f"{run_id}:post:0", run_id=run_id, platform="console", state="sent")
        )
    return int(run_id)


async def _kept(rt: Runtime, run_id: int) -> tuple[int, int, int, bool]:
    async with rt.autocommit.connect() as conn:
        counts = [
            (await conn.execute(select(func.count()).select_from(t).where(t.c.run_id == run_id))).scalar_one()
            for t in (STEPS, WAITS, OUTBOX)
        ]
        pruned = (await conn.execute(select(RUNS.c.pruned_at).where(RUNS.c.id == run_id))).scalar_one()
    return counts[0], counts[1], counts[2], pruned is not None


async def test_only_runs_finished_before_the_retention_lose_their_steps(runtime: Runtime) -> None:
    assert runtime.settings.run_retention_days == 30
    old_done = await _run(runtime, "completed", 31)
    old_failed = await _run(runtime, "failed", 45)
    recent = await _run(runtime, "completed", 29)
    sleeping = await _run(runtime, "sleeping", None)  # a reminder sleeping for months keeps its early steps

    assert await prune_finished_runs(runtime) == 2
    assert await _kept(runtime, old_done) == (0, 0, 0, True)
    assert await _kept(runtime, old_failed) == (0, 0, 0, True)
    assert await _kept(runtime, recent) == (1, 1, 1, False)
    assert await _kept(runtime, sleeping) == (1, 1, 1, False)
    assert await prune_finished_runs(runtime) == 0, "a pruned run is not pruned again"

    assert not await retry_run(runtime, old_failed), "without its outbox a replay could post twice"
    async with runtime.autocommit.connect() as conn:
        listed = (await conn.execute(select(RUNS.c.status).where(RUNS.c.id == old_failed))).scalar_one()
    assert listed == "failed", "the run itself stays listed for operators"


async def test_zero_keeps_everything(runtime: Runtime) -> None:
    settings = runtime.settings.model_copy(update={"run_retention_days": 0})
    old = await _run(runtime, "completed", 400)
    assert await prune_finished_runs(replace(runtime, settings=settings)) == 0
    assert await _kept(runtime, old) == (1, 1, 1, False)
