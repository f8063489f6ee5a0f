"""The durable-workflow engine against real Postgres and Redis, with the production worker in this process.

Workflows defined here are registered under `test.*` names; counters in Python show how often step code ran.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.clock import FakeClock
from bot.config import Settings
from bot.runtime import Runtime
from bot.workflows import store
from bot.workflows.errors import NonRetriableError, StepFailed
from bot.workflows.events import send_event
from bot.workflows.models import RUNS, STEPS, WAITS
from bot.workflows.registry import workflow
from bot.workflows.runs import cancel_run, retry_run, start_run, wake_due_runs
from bot.workflows.steps import WorkflowContext, backoff_s
from jobs.queue import QUEUE_NAME, job_id
from tests.conftest import wait_for

ran: Counter[str] = Counter()
gates: dict[str, asyncio.Event] = {}


@pytest.fixture(autouse=True)
def _reset() -> None:
    ran.clear()
    gates.clear()


async def run_row(rt: Runtime, run_id: int) -> dict[str, Any]:
    async with rt.autocommit.connect() as conn:
        row = (await conn.execute(select(RUNS).where(RUNS.c.id == run_id))).mappings().one()
    return dict(row)


async def finished(rt: Runtime, run_id: int) -> dict[str, Any] | None:
    row = await run_row(rt, run_id)
    return row if row["status"] in ("completed", "failed", "cancelled") else None


async def steps_of(rt: Runtime, run_id: int) -> dict[str, tuple[str, int]]:
    async with rt.autocommit.connect() as conn:
        rows = await conn.execute(
            select(STEPS.c.step_id, STEPS.c.status, STEPS.c.attempts).where(STEPS.c.run_id == run_id)
        )
    return {step: (status, attempts) for step, status, attempts in rows}


@workflow("test.pipeline")
async def pipeline(ctx: WorkflowContext, input: dict[str, Any]) -> Any:
    async def double() -> int:
        ran["double"] += 1
        return int(input["n"]) * 2

    async def flaky() -> str:
        ran["flaky"] += 1
        if ran["flaky"] < 3:
            raise ConnectionError("upstream hiccup")
        return "ok"

    doubled = await ctx.step.run("double", double)
    await ctx.step.sleep("nap", 0.3)
    status = await ctx.step.run("flaky", flaky)
    return {"doubled": doubled, "flaky": status}


async def test_steps_are_memoized_retried_and_slept(runtime: Runtime, worker: asyncio.Task[None]) -> None:
    started = await start_run(runtime, "test.pipeline", {"n": 21})
    await wait_for(lambda: _status_is(runtime, started.run_id, "sleeping"))
    row = await wait_for(lambda: finished(runtime, started.run_id))
    assert row["status"] == "completed"
    assert row["output"] == {"doubled": 42, "flaky": "ok"}
    assert ran["double"] == 1, "a finished step never runs again, though the run resumed four times"
    assert ran["flaky"] == 3
    assert await steps_of(runtime, started.run_id) == {
        "double": ("completed", 1),
        "nap": ("completed", 1),
        "flaky": ("completed", 3),
    }


async def _status_is(rt: Runtime, run_id: int, status: str) -> bool:
    return bool((await run_row(rt, run_id))["status"] == status)


@workflow("test.non_retriable", max_step_attempts=5)
async def non_retriable(ctx: WorkflowContext, input: dict[str, Any]) -> Any:
    async def refuse() -> None:
        ran["refuse"] += 1
        raise NonRetriableError("bad input", user_message="That file is not audio.")

    try:
        await ctx.step.run("refuse", refuse)
    except StepFailed as failed:
        note = failed.user_message
        await ctx.step.run("note", lambda: _echo(note))
        raise


async def _echo(value: Any) -> Any:
    return value


async def test_non_retriable_error_fails_at_once_and_can_be_handled(
    runtime: Runtime, worker: asyncio.Task[None]
) -> None:
    started = await start_run(runtime, "test.non_retriable", {})
    row = await wait_for(lambda: finished(runtime, started.run_id))
    assert row["status"] == "failed"
    assert "bad input" in row["error"]
    assert ran["refuse"] == 1
    steps = await steps_of(runtime, started.run_id)
    assert steps == {"refuse": ("failed", 1), "note": ("completed", 1)}


@workflow("test.always_failing", max_step_attempts=3)
async def always_failing(ctx: WorkflowContext, input: dict[str, Any]) -> Any:
    async def boom() -> None:
        ran["boom"] += 1
        raise RuntimeError("still broken")

    await ctx.step.run("boom", boom)


async def test_retries_are_bounded_and_an_operator_retry_resumes(runtime: Runtime, worker: asyncio.Task[None]) -> None:
    started = await start_run(runtime, "test.always_failing", {})
    row = await wait_for(lambda: finished(runtime, started.run_id))
    assert row["status"] == "failed"
    assert "gave up after 3 attempts: RuntimeError: still broken" in row["error"]
    assert ran["boom"] == 3
    assert await retry_run(runtime, started.run_id)
    await wait_for(lambda: _status_is(runtime, started.run_id, "failed"))
    await wait_for(lambda: ran["boom"] == 6)


@workflow("test.waiter")
async def waiter(ctx: WorkflowContext, input: dict[str, Any]) -> Any:
    await ctx.step.run("before", lambda: _echo("ready"))
    if input.get("pause_s"):
        await asyncio.sleep(input["pause_s"])  # outside any step: the window where an event may slip in
    event = await ctx.step.wait_for_event(
        "answer", "test.answer", match={"ticket": input["ticket"]}, timeout=input.get("timeout_s", 30)
    )
    ran["after-wait"] += 1
    return {"event": event["data"] if event else None}


async def test_wait_for_event_is_woken_by_the_matching_event_only(runtime: Runtime, worker: asyncio.Task[None]) -> None:
    started = await start_run(runtime, "test.waiter", {"ticket": 7})
    await wait_for(lambda: _status_is(runtime, started.run_id, "waiting"))
    other = await send_event(runtime, "test.answer", {"ticket": 8, "text": "not yours"})
    assert other.woken_runs == ()
    sent = await send_event(runtime, "test.answer", {"ticket": 7, "text": "yes"})
    assert sent.woken_runs == (started.run_id,)
    row = await wait_for(lambda: finished(runtime, started.run_id))
    assert row["output"] == {"event": {"ticket": 7, "text": "yes"}}


async def test_wait_times_out_with_none(runtime: Runtime, worker: asyncio.Task[None]) -> None:
    started = await start_run(runtime, "test.waiter", {"ticket": 1, "timeout_s": 0.5})
    row = await wait_for(lambda: finished(runtime, started.run_id))
    assert row["output"] == {"event": None}


async def test_event_sent_before_the_wait_is_registered_is_matched(
    runtime: Runtime, worker: asyncio.Task[None]
) -> None:
    started = await start_run(runtime, "test.waiter", {"ticket": 3, "pause_s": 1.0})
    await wait_for(lambda: steps_of(runtime, started.run_id))  # "before" is done; the run pauses before waiting
    async with runtime.autocommit.connect() as conn:
        assert (await conn.execute(select(WAITS.c.run_id))).all() == [], "no wait registered yet"
    await send_event(runtime, "test.answer", {"ticket": 3, "text": "early"})
    row = await wait_for(lambda: finished(runtime, started.run_id))
    assert row["output"] == {"event": {"ticket": 3, "text": "early"}}
    assert ran["after-wait"] == 1


async def test_timeout_and_event_at_the_same_moment_give_exactly_one_outcome(
    runtime: Runtime, worker: asyncio.Task[None]
) -> None:
    runs = [await start_run(runtime, "test.waiter", {"ticket": 100 + i, "timeout_s": 1.0}) for i in range(12)]
    for started in runs:
        await wait_for(partial(_status_is, runtime, started.run_id, "waiting"))
    waits = await _wait_rows(runtime)
    # Each event is sent within a few ms of its wait's deadline, some before and some after.
    sends = []
    for i, started in enumerate(runs):
        deadline = waits[started.run_id]["expires_at"]
        sends.append(_send_at(runtime, deadline, (i - 6) * 0.004, {"ticket": 100 + i, "text": "race"}))
    results = await asyncio.gather(*sends)
    outcomes: Counter[str] = Counter()
    for started, sent in zip(runs, results, strict=True):
        row = await wait_for(partial(finished, runtime, started.run_id))
        wait = (await _wait_rows(runtime))[started.run_id]
        if row["output"]["event"] is None:
            assert wait["state"] == "timed_out"
            assert sent.woken_runs == (), "a timed-out wait was not also woken by the event"
            outcomes["timed_out"] += 1
        else:
            assert wait["state"] == "matched"
            outcomes["matched"] += 1
    assert sum(outcomes.values()) == len(runs)
    assert ran["after-wait"] == len(runs), "each run continued exactly once"


async def _wait_rows(rt: Runtime) -> dict[int, dict[str, Any]]:
    async with rt.autocommit.connect() as conn:
        rows = (await conn.execute(select(WAITS))).mappings().all()
    return {row["run_id"]: dict(row) for row in rows}


async def _send_at(rt: Runtime, deadline: Any, offset_s: float, data: dict[str, Any]) -> Any:
    from datetime import UTC, datetime

    delay = (deadline - datetime.now(UTC)).total_seconds() + offset_s
    await asyncio.sleep(max(0.0, delay))
    return await send_event(rt, "test.answer", data)


@workflow("test.gated")
async def gated(ctx: WorkflowContext, input: dict[str, Any]) -> Any:
    async def first() -> str:
        ran["first"] += 1
        await gates[input["gate"]].wait()
        return "first"

    async def second() -> str:
        ran["second"] += 1
        return "second"

    await ctx.step.run("first", first)
    await ctx.step.run("second", second)


async def test_cancel_stops_a_run_between_steps(runtime: Runtime, worker: asyncio.Task[None]) -> None:
    gates["g"] = asyncio.Event()
    started = await start_run(runtime, "test.gated", {"gate": "g"})
    await wait_for(lambda: ran["first"] == 1)
    assert await cancel_run(runtime, started.run_id)
    gates["g"].set()
    await asyncio.sleep(0.5)
    row = await run_row(runtime, started.run_id)
    assert row["status"] == "cancelled"
    assert ran["second"] == 0, "no step starts after the cancel"
    assert await steps_of(runtime, started.run_id) == {}, "the interrupted step's result was not kept"
    assert not await cancel_run(runtime, started.run_id), "cancelling twice is a no-op"


async def test_cancel_a_sleeping_run(runtime: Runtime, worker: asyncio.Task[None]) -> None:
    started = await start_run(runtime, "test.pipeline", {"n": 1})
    await wait_for(lambda: _status_is(runtime, started.run_id, "sleeping"))
    assert await cancel_run(runtime, started.run_id)
    await asyncio.sleep(0.6)
    assert (await run_row(runtime, started.run_id))["status"] == "cancelled"
    assert ran["flaky"] == 0


async def test_only_one_claim_of_a_run_succeeds(runtime: Runtime, settings: Settings) -> None:
    started = await start_run(runtime, "test.pipeline", {"n": 1})
    claims = await asyncio.gather(*(store.claim(runtime, started.run_id, 0, f"w{i}", 30) for i in range(8)))
    assert sum(claim is not None for claim in claims) == 1
    stale = await store.claim(runtime, started.run_id, 5, "late", 30)
    assert stale is None, "a job with an outdated wake-up number does nothing"


@workflow("test.child")
async def child(ctx: WorkflowContext, input: dict[str, Any]) -> Any:
    ran["child"] += 1
    return await ctx.step.run("square", lambda: _echo(input["x"] ** 2))


@workflow("test.parent")
async def parent(ctx: WorkflowContext, input: dict[str, Any]) -> Any:
    squared = await ctx.step.invoke("square", "test.child", {"x": input["x"]}, timeout=timedelta(seconds=30))
    return {"squared": squared}


async def test_invoke_starts_one_child_and_returns_its_output(runtime: Runtime, worker: asyncio.Task[None]) -> None:
    started = await start_run(runtime, "test.parent", {"x": 9})
    row = await wait_for(lambda: finished(runtime, started.run_id))
    assert row["output"] == {"squared": 81}
    async with runtime.autocommit.connect() as conn:
        children = (await conn.execute(select(RUNS.c.id).where(RUNS.c.parent_run_id == started.run_id))).all()
    assert len(children) == 1


async def test_starting_with_the_same_dedupe_key_gives_one_run(runtime: Runtime) -> None:
    first = await start_run(runtime, "test.child", {"x": 1}, dedupe_key="once")
    second = await start_run(runtime, "test.child", {"x": 1}, dedupe_key="once")
    assert (first.created, second.created) == (True, False)
    assert first.run_id == second.run_id
    assert await runtime.redis.exists(f"arq:job:{job_id(first.run_id, 0)}")


@pytest.mark.parametrize(("attempt", "low", "high"), [(1, 0.8, 1.2), (2, 1.6, 2.4), (3, 3.2, 4.8), (10, 50, 50)])
def test_backoff_doubles_with_jitter_and_is_capped(attempt: int, low: float, high: float) -> None:
    settings = Settings(_env_file=None, retry_base_delay_s=1.0, retry_max_delay_s=50.0)
    for _ in range(20):
        assert low <= backoff_s(attempt, settings) <= high


def test_backoff_honours_retry_after() -> None:
    settings = Settings(_env_file=None, retry_base_delay_s=1.0)
    assert backoff_s(1, settings, retry_after_s=30.0) == 30.0


@workflow("test.buggy")
async def buggy(ctx: WorkflowContext, input: dict[str, Any]) -> Any:
    await ctx.step.run("fine", lambda: _echo(1))
    ran["buggy"] += 1
    return input["missing"]  # a bug outside any step


async def test_a_bug_outside_steps_fails_the_run_once(runtime: Runtime, worker: asyncio.Task[None]) -> None:
    started = await start_run(runtime, "test.buggy", {})
    row = await wait_for(lambda: finished(runtime, started.run_id))
    assert row["status"] == "failed"
    assert row["error"] == "KeyError: 'missing'"
    await asyncio.sleep(0.5)
    assert ran["buggy"] == 1, "not retried: it would fail the same way"


async def test_a_run_whose_workers_keep_dying_tells_the_user_and_fails(runtime: Runtime, stand_in: object) -> None:
    from adapters.console.inbound import console_thread, to_event
    from bot.intake import accept
    from jobs.worker import in_process_worker
    from tests.conftest import thread_view

    accepted = await accept(runtime, to_event("hello?", "cursed", user="ada"))
    async with runtime.autocommit.connect() as conn:
        await conn.execute(
            RUNS.update().where(RUNS.c.id == accepted.run_id).values(rescues=runtime.settings.workflow_max_rescues + 1)
        )
    async with in_process_worker(runtime.settings):
        row = await wait_for(lambda: finished(runtime, accepted.run_id))
    assert row["status"] == "failed"
    assert await thread_view(runtime, console_thread("cursed")) == [
        "⚠️ I couldn't answer: I tried several times and could not answer this."
    ]


async def test_sweeper_abandons_a_run_that_kills_every_worker(runtime: Runtime) -> None:
    from sqlalchemy import func

    from bot.workflows.sweeper import sweep

    started = await start_run(runtime, "test.pipeline", {"n": 1})
    async with runtime.autocommit.connect() as conn:
        await conn.execute(
            RUNS.update()
            .where(RUNS.c.id == started.run_id)
            .values(
                status="running",
                lease_owner="dead",
                lease_until=func.now() - timedelta(seconds=1),
                rescues=runtime.settings.workflow_max_rescues + 2,
            )
        )
    await sweep(runtime)
    row = await run_row(runtime, started.run_id)
    assert (row["status"], row["error"]) == ("failed", "abandoned: its workers kept dying")


async def test_a_parent_whose_childs_finish_event_was_lost_is_woken_by_the_sweeper(
    runtime: Runtime, worker: asyncio.Task[None]
) -> None:
    from datetime import UTC, datetime

    from bot.workflows.runs import enqueue_run

    later = datetime.now(UTC) + timedelta(hours=1)
    parent_run = await start_run(runtime, "test.parent", {"x": 4}, wake_at=later)
    # The child the parent will invoke, already finished without telling anyone (no parent on record): as if its
    # `run.finished` event had been lost.
    orphan = await start_run(runtime, "test.child", {"x": 4}, dedupe_key=f"invoke:{parent_run.run_id}:square")
    await wait_for(lambda: finished(runtime, orphan.run_id))
    async with runtime.autocommit.connect() as conn:
        seq = (
            await conn.execute(
                RUNS.update()
                .where(RUNS.c.id == parent_run.run_id)
                .values(wake_at=func.now(), wake_seq=RUNS.c.wake_seq + 1)
                .returning(RUNS.c.wake_seq)
            )
        ).scalar_one()
    await enqueue_run(runtime, parent_run.run_id, seq)
    row = await wait_for(lambda: finished(runtime, parent_run.run_id), timeout_s=20)
    assert row["output"] == {"squared": 16}


@workflow("test.overnight")
async def overnight(ctx: WorkflowContext, input: dict[str, Any]) -> Any:
    await ctx.step.sleep("night", timedelta(days=1))
    ran["morning"] += 1
    return await ctx.step.run("morning", lambda: _echo(ctx.clock.now().isoformat()))


async def test_a_day_long_sleep_resumes_when_the_clock_reaches_its_due_time(
    runtime: Runtime, clock: FakeClock, worker: asyncio.Task[None]
) -> None:
    started = await start_run(runtime, "test.overnight", {})
    await wait_for(lambda: _status_is(runtime, started.run_id, "sleeping"))
    due = (await run_row(runtime, started.run_id))["wake_at"]
    assert due - clock.now() > timedelta(hours=23)
    clock.advance(timedelta(hours=23))
    assert await wake_due_runs(runtime) == 0, "an hour early, nothing wakes"
    assert (await run_row(runtime, started.run_id))["status"] == "sleeping"
    clock.advance(timedelta(hours=1))
    # The worker's sweeper wakes it: the wake-up it queued still waits for the wall clock's tomorrow.
    row = await wait_for(lambda: finished(runtime, started.run_id))
    assert row["status"] == "completed"
    assert datetime.fromisoformat(row["output"]) >= due
    assert ran["morning"] == 1


async def test_a_sleep_begun_on_a_moved_clock_is_queued_for_its_length_of_wall_time(
    runtime: Runtime, clock: FakeClock, worker: asyncio.Task[None]
) -> None:
    clock.advance(timedelta(days=3))
    started = await start_run(runtime, "test.overnight", {})
    await wait_for(lambda: _status_is(runtime, started.run_id, "sleeping"))
    seq = (await run_row(runtime, started.run_id))["wake_seq"]
    score = await runtime.redis.zscore(QUEUE_NAME, job_id(started.run_id, seq))
    assert score is not None
    queued_for = score / 1000 - time.time()
    assert abs(queued_for - 86400) < 60, "a day from now on the wall, not a day after the clock's reading"


# The worker fixture runs these beside the bot's own workflows.


@workflow("test.slow_step")
async def slow_step(ctx: WorkflowContext, input: dict[str, Any]) -> Any:
    async def slow() -> int:
        await asyncio.sleep(0.3)
        return 1

    return await ctx.step.run("slow", slow)


async def step_times(rt: Runtime, run_id: int) -> dict[str, timedelta]:
    async with rt.autocommit.connect() as conn:
        rows = await conn.execute(
            select(STEPS.c.step_id, STEPS.c.started_at, STEPS.c.finished_at).where(STEPS.c.run_id == run_id)
        )
    return {step: finished_at - started_at for step, started_at, finished_at in rows}


async def test_steps_record_how_long_they_took(runtime: Runtime, worker: asyncio.Task[None]) -> None:
    slow = await start_run(runtime, "test.slow_step", {})
    row = await wait_for(lambda: finished(runtime, slow.run_id))
    assert row["status"] == "completed", row
    assert (await step_times(runtime, slow.run_id))["slow"] >= timedelta(seconds=0.3)

    waiting = await start_run(runtime, "test.waiter", {"ticket": 11})
    await wait_for(lambda: _status_is(runtime, waiting.run_id, "waiting"))
    await asyncio.sleep(0.5)
    await send_event(runtime, "test.answer", {"ticket": 11, "text": "late"})
    await wait_for(lambda: finished(runtime, waiting.run_id))
    assert (await step_times(runtime, waiting.run_id))["answer"] >= timedelta(seconds=0.5), "a wait lasts"


TEST_WORKFLOWS = (pipeline, non_retriable, always_failing, waiter, gated, child, parent, buggy, overnight, slow_step)
