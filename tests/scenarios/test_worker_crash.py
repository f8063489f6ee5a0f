"""Crashes and lost jobs, with real worker processes: `bot worker` killed with SIGKILL in the middle of a reply,
and Redis flushed while runs sleep or wait. Postgres holds the runs; the sweeper brings them back."""

from __future__ import annotations

import asyncio
import signal
import time

from sqlalchemy import select

from adapters.console.inbound import console_thread, to_event
from bot.config import Settings
from bot.events import ThreadRef
from bot.intake import accept
from bot.models import MESSAGES
from bot.runtime import Runtime
from bot.workflows.events import send_event
from bot.workflows.models import RUNS, STEPS
from bot.workflows.runs import start_run
from sandbox.openai_server import StandInLLM, Step
from tests.conftest import stream_entries, thread_view, wait_for, worker_process

ANSWER = " ".join(f"word{i}" for i in range(60))


async def test_worker_killed_mid_reply_another_finishes_with_one_reply(runtime: Runtime, stand_in: StandInLLM) -> None:
    stand_in.script(Step(reply=ANSWER), Step(reply=ANSWER))
    stand_in.token_delay = 0.15  # a slow model: the first worker is mid-stream when it dies
    thread = console_thread("crash")
    accepted = await accept(runtime, to_event("Tell me sixty words.", "crash", user="ada"))

    async with worker_process(runtime, "A") as first:
        await wait_for(lambda: _posted(runtime, thread), timeout_s=60)  # part of the answer is visible
        first.send_signal(signal.SIGKILL)
        await first.wait()
    partial = await thread_view(runtime, thread)
    assert len(partial) == 1
    assert partial[0] != ANSWER, "killed in the middle of the reply"

    stand_in.token_delay = 0.0
    async with worker_process(runtime, "B"):
        await wait_for(lambda: _run_status(runtime, accepted.run_id, "completed"), timeout_s=60)

    posts = [e for e in await stream_entries(runtime, thread) if e["op"] == "post"]
    view = await thread_view(runtime, thread)
    steps = await _steps(runtime, accepted.run_id)
    run = await _run(runtime, accepted.run_id)
    claims = await _message_claims(runtime, accepted.message_id)
    print(  # the figures the note quotes
        f"\ncrash test: posts={len(posts)} thread={[t[:24] + '…' for t in view]} model_requests="
        f"{len(stand_in.chat_requests())} steps={steps} run_status={run['status']} rescues={run['rescues']} "
        f"context_claims={claims}"
    )
    assert view == [ANSWER], "the user sees exactly one reply, complete"
    assert len(posts) == 1, "the second worker edited the first worker's message instead of posting again"
    assert len(stand_in.chat_requests()) == 2
    assert claims == 1, "the finished context step did not run again"
    assert steps["context"] == ("completed", 1)
    assert steps["reply"] == ("completed", 1)
    assert run["rescues"] == 1


async def test_with_the_default_lease_a_killed_workers_reply_resumes_within_ten_seconds(
    runtime: Runtime, stand_in: StandInLLM
) -> None:
    defaults = Settings(_env_file=None)
    lease = {"WORKFLOW_LEASE_S": str(defaults.workflow_lease_s),
             "WORKFLOW_SWEEP_INTERVAL_S": str(defaults.workflow_sweep_interval_s)}  # fmt: skip
    stand_in.script(Step(reply=ANSWER), Step(reply=ANSWER))
    stand_in.token_delay = 0.15
    thread = console_thread("takeover")
    accepted = await accept(runtime, to_event("Tell me sixty words.", "takeover", user="ada"))
    async with worker_process(runtime, "A", **lease) as first, worker_process(runtime, "B", **lease):
        await wait_for(lambda: _posted(runtime, thread), timeout_s=60)
        first.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        await first.wait()
        stand_in.token_delay = 0.0
        await wait_for(lambda: _run_status(runtime, accepted.run_id, "completed"), timeout_s=30)
        took = time.monotonic() - killed_at
    print(
        f"\ntakeover with the default {defaults.workflow_lease_s:g} s lease: reply complete {took:.1f} s after the kill"
    )
    assert took < 10, f"the reply resumed and finished {took:.1f} s after its worker died"
    assert await thread_view(runtime, thread) == [ANSWER]


async def test_worker_stopped_mid_reply_closes_down_and_hands_the_run_back(
    runtime: Runtime, stand_in: StandInLLM
) -> None:
    stand_in.script(Step(reply=ANSWER), Step(reply=ANSWER))
    stand_in.token_delay = 0.15
    thread = console_thread("stop")
    accepted = await accept(runtime, to_event("Tell me sixty words.", "stop", user="ada"))

    async with worker_process(runtime, "A") as first:
        await wait_for(lambda: _posted(runtime, thread), timeout_s=60)
        first.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(first.wait(), 20) == 0
        assert first.stderr is not None
        stderr = (await first.stderr.read()).decode()
    assert "Traceback" not in stderr, stderr
    assert "Unclosed" not in stderr, "every HTTP session and pool was closed on the way out"
    assert "run handed back on shutdown" in stderr
    run = await _run(runtime, accepted.run_id)
    assert run["status"] == "pending", "given back at once, not left running until its lease ran out"
    assert run["lease_owner"] is None

    stand_in.token_delay = 0.0
    async with worker_process(runtime, "B"):
        await wait_for(lambda: _run_status(runtime, accepted.run_id, "completed"), timeout_s=60)
    posts = [e for e in await stream_entries(runtime, thread) if e["op"] == "post"]
    assert await thread_view(runtime, thread) == [ANSWER]
    assert len(posts) == 1, "the second worker edited the first one's message"
    assert (await _run(runtime, accepted.run_id))["rescues"] == 0, "handed back, not rescued from a dead worker"


async def test_redis_flushed_while_runs_sleep_and_wait_the_sweeper_resumes_them(
    runtime: Runtime, stand_in: StandInLLM
) -> None:
    from bot.catalog import WORKFLOWS
    from tests.bot.workflows.test_engine import TEST_WORKFLOWS

    workflows = WORKFLOWS.with_(*TEST_WORKFLOWS)
    sleeper = await start_run(runtime, "test.pipeline", {"n": 5})
    waiter = await start_run(runtime, "test.waiter", {"ticket": 77, "timeout_s": 60})
    from jobs.worker import in_process_worker

    async with in_process_worker(runtime.settings, workflows=workflows):
        await wait_for(lambda: _run_status(runtime, waiter.run_id, "waiting"))
        await wait_for(lambda: _run_status(runtime, sleeper.run_id, "sleeping"))
    await runtime.redis.flushdb()  # every queued wake-up is gone
    # The event for the waiter arrives while no worker runs; its wake-up job is lost too.
    await send_event(runtime, "test.answer", {"ticket": 77, "text": "late"})
    await runtime.redis.flushdb()

    async with in_process_worker(runtime.settings, workflows=workflows):
        await wait_for(lambda: _run_status(runtime, sleeper.run_id, "completed"), timeout_s=30)
        await wait_for(lambda: _run_status(runtime, waiter.run_id, "completed"), timeout_s=30)
    assert (await _run(runtime, waiter.run_id))["output"] == {"event": {"ticket": 77, "text": "late"}}
    assert (await _run(runtime, sleeper.run_id))["output"] == {"doubled": 10, "flaky": "ok"}


async def _posted(rt: Runtime, thread: ThreadRef) -> bool:
    return bool(await thread_view(rt, thread))


async def _run(rt: Runtime, run_id: int) -> dict[str, object]:
    async with rt.autocommit.connect() as conn:
        return dict((await conn.execute(select(RUNS).where(RUNS.c.id == run_id))).mappings().one())


async def _run_status(rt: Runtime, run_id: int, status: str) -> bool:
    return (await _run(rt, run_id))["status"] == status


async def _steps(rt: Runtime, run_id: int) -> dict[str, tuple[str, int]]:
    async with rt.autocommit.connect() as conn:
        rows = await conn.execute(
            select(STEPS.c.step_id, STEPS.c.status, STEPS.c.attempts).where(STEPS.c.run_id == run_id)
        )
    return {step: (status, attempts) for step, status, attempts in rows}


async def _message_claims(rt: Runtime, message_id: int) -> int:
    async with rt.autocommit.connect() as conn:
        return int((await conn.execute(select(MESSAGES.c.attempts).where(MESSAGES.c.id == message_id))).scalar_one())
