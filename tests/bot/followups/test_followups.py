"""Reminders, follow-ups and questions, from the neutral command layer to a post in the console thread, with
the production worker in this process."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from adapters.console.app import ConsoleSession
from adapters.console.inbound import console_thread
from bot.catalog import COMMANDS
from bot.clock import FakeClock
from bot.conversation import ask_in_thread
from bot.events import SlashCommand
from bot.runtime import Runtime
from bot.threads import ensure_thread
from bot.workflows.models import RUNS
from bot.workflows.registry import workflow
from bot.workflows.runs import start_run, wake_due_runs
from bot.workflows.steps import WorkflowContext
from jobs.worker import in_process_worker
from sandbox.openai_server import StandInLLM, Step
from tests.conftest import thread_view, wait_for

counter = iter(range(1_000_000))


def remind(text: str, thread: str = "plans", user: str = "ada", command: str = "/remind") -> SlashCommand:
    return SlashCommand(
        event_id=f"cmd-{next(counter)}", thread=console_thread(thread), user_id=user, command=command, text=text
    )


async def run_of(rt: Runtime, reply_text: str) -> dict[str, Any]:
    run_id = int(reply_text.split("(id r")[1].split(";")[0])
    async with rt.autocommit.connect() as conn:
        return dict((await conn.execute(select(RUNS).where(RUNS.c.id == run_id))).mappings().one())


async def test_reminder_in_two_hours_fires_once_when_due_and_survives_a_worker_restart(
    runtime: Runtime, clock: FakeClock
) -> None:
    async with in_process_worker(runtime.settings, clock=clock):
        reply = await COMMANDS.handle(runtime, remind("in 2 hours stand up and stretch"))
        assert reply.accepted, reply.text
        assert reply.text.startswith("⏰ I'll remind you ")
        assert ": stand up and stretch (id r" in reply.text
        await wait_for(lambda: _status(runtime, reply.text, "sleeping"))
        clock.advance(timedelta(hours=1, minutes=59))
        assert await wake_due_runs(runtime) == 0, "not due a minute early"
    # The worker is gone while the reminder sleeps; a new one picks it up when it is due.
    assert await thread_view(runtime, console_thread("plans")) == []
    clock.advance(timedelta(minutes=1))
    async with in_process_worker(runtime.settings, clock=clock):
        # Its sweeper sees the reminder due by the clock and wakes it; no two-hour timer has to run out.
        await wait_for(lambda: _status(runtime, reply.text, "completed"))
    assert await thread_view(runtime, console_thread("plans")) == ["⏰ Reminder for ada: stand up and stretch"]


async def test_the_same_command_delivered_twice_schedules_once(runtime: Runtime) -> None:
    command = remind("in 1 hour check the oven")
    first = await COMMANDS.handle(runtime, command)
    second = await COMMANDS.handle(runtime, command)
    assert first.text == second.text
    listed = await COMMANDS.handle(runtime, remind("list"))
    assert listed.text.count("check the oven") == 1


async def test_list_and_cancel_scheduled_items(runtime: Runtime, clock: FakeClock, worker: asyncio.Task[None]) -> None:
    one = await COMMANDS.handle(runtime, remind("in 2 hours water the plants"))
    weekly = await COMMANDS.handle(runtime, remind("every Monday 09:00 weekly report"))
    assert weekly.text.startswith("🔁 I'll remind you every Monday at 09:00 (UTC): weekly report. First on Mon ")
    await COMMANDS.handle(runtime, remind("in 3 hours someone else's", user="bob"))
    listed = await COMMANDS.handle(runtime, remind("list"))
    run_id = one.text.split("(id ")[1].split(";")[0]
    schedule_id = weekly.text.split("(id ")[1].split(";")[0]
    assert listed.text.splitlines()[0] == "Scheduled for you:"
    assert f"• {run_id} — " in listed.text
    assert f"• {schedule_id} — every Monday 09:00 weekly report" in listed.text
    assert "someone else" not in listed.text
    here = await COMMANDS.handle(runtime, remind("list here"))
    assert "someone else's" in here.text, "a thread's list shows everyone's items in it"

    assert (await COMMANDS.handle(runtime, remind(f"cancel {run_id}", user="bob"))).accepted is False
    cancelled = await COMMANDS.handle(runtime, remind(f"cancel {run_id}"))
    assert cancelled.text == f"Cancelled {run_id}."
    assert (await COMMANDS.handle(runtime, remind(f"cancel {schedule_id}"))).text == f"Cancelled {schedule_id}."
    assert (await COMMANDS.handle(runtime, remind(f"cancel {schedule_id}"))).accepted is False
    # Another reminder due at the same time shows when the cancelled one would have fired.
    kept = await COMMANDS.handle(runtime, remind("in 2 hours feed the cat", thread="kitchen"))
    clock.advance(timedelta(hours=2))
    await wait_for(lambda: _status(runtime, kept.text, "completed"))
    assert await thread_view(runtime, console_thread("plans")) == [], "a cancelled reminder never fires"
    assert (await run_of(runtime, one.text))["status"] == "cancelled"
    remaining = await COMMANDS.handle(runtime, remind("list"))
    assert remaining.text == "Nothing scheduled for you here."


async def test_unreadable_reminder_gets_a_clear_answer(runtime: Runtime) -> None:
    reply = await COMMANDS.handle(runtime, remind("sometime soonish do taxes"))
    assert not reply.accepted
    assert reply.text.startswith('I couldn\'t tell when from "sometime soonish do taxes". Start with "in 2 hours')
    usage = await COMMANDS.handle(runtime, remind(""))
    assert usage.text.startswith("Usage: /remind in 2 hours")


async def test_reminder_uses_the_users_time_zone(runtime: Runtime) -> None:
    from bot.preferences import set_preferences

    await set_preferences(runtime, "console", "local", "ada", {"timezone": "Asia/Tokyo"})
    reply = await COMMANDS.handle(runtime, remind("tomorrow 9am standup"))
    assert " at 09:00 JST: standup" in reply.text


async def test_dates_and_monthly_repeats_are_read_in_the_users_time_zone(runtime: Runtime) -> None:
    from bot.preferences import set_preferences
    from bot.stores.followups import active_schedules

    await set_preferences(runtime, "console", "local", "ada", {"timezone": "Asia/Tokyo"})
    reply = await COMMANDS.handle(runtime, remind("Dec 25 9am call mum"))
    assert reply.accepted, reply.text
    assert "25 Dec" in reply.text
    assert " at 09:00 JST: call mum" in reply.text
    monthly = await COMMANDS.handle(runtime, remind("every month on the 1st send invoices"))
    assert monthly.accepted, monthly.text
    assert "every month on the 1st at 09:00 (Asia/Tokyo)" in monthly.text
    async with runtime.engine.connect() as conn:
        rows = await conn.run_sync(lambda sync: list(active_schedules(sync)))
    assert [row.trigger for row in rows] == [
        {"type": "cron", "day": "1", "hour": 9, "minute": 0, "timezone": "Asia/Tokyo"}
    ]


async def test_followup_nudges_a_quiet_thread_with_a_summary(
    runtime: Runtime, clock: FakeClock, worker: asyncio.Task[None], stand_in: StandInLLM
) -> None:
    stand_in.script(Step(reply="Ada asked about the release; nobody answered yet."))
    reply = await COMMANDS.handle(runtime, remind("in 2 hours is the release ready?", command="/followup"))
    assert reply.text.startswith("👋 If nobody writes here within 2 hours, I'll nudge this thread")
    await wait_for(lambda: _status(runtime, reply.text, "waiting"))
    clock.advance(timedelta(hours=2))
    posts = await wait_for(lambda: thread_view(runtime, console_thread("plans")))
    assert posts == [
        "👋 Nobody has written here for 2 hours. is the release ready?\n\n"
        "*Where this thread stands:* Ada asked about the release; nobody answered yet."
    ]


async def test_followup_stays_quiet_when_someone_writes(
    runtime: Runtime, clock: FakeClock, worker: asyncio.Task[None], stand_in: StandInLLM
) -> None:
    reply = await COMMANDS.handle(runtime, remind("in 3 hours", command="/followup", thread="busy"))
    await wait_for(lambda: _status(runtime, reply.text, "waiting"))
    clock.advance(timedelta(hours=1))
    await ConsoleSession(runtime, user="bob").send("I'm on it.", "busy")
    run = await wait_for(lambda: _finished(runtime, reply.text))
    assert run["output"] == {"nudged": False, "answered_by": "bob"}
    clock.advance(timedelta(hours=3))
    assert await wake_due_runs(runtime) == 0, "nothing is left waiting to nudge"
    assert len(await thread_view(runtime, console_thread("busy"))) == 1, "only the answer to bob, no nudge"


@workflow("test.ask")
async def ask_workflow(ctx: WorkflowContext, input: dict[str, Any]) -> Any:
    thread = console_thread(input["thread"])
    answer = await ask_in_thread(
        ctx,
        "size",
        thread,
        thread_id=input["thread_id"],
        user_id="ada",
        question="Which size do you want, S, M or L?",
        timeout_s=input["timeout_s"],
        nudge="No answer, so I'll stop here. Ask again any time.",
    )
    return {"answer": answer}


async def test_asked_question_continues_with_the_users_reply(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM
) -> None:
    thread_id = await ensure_thread(runtime, console_thread("shop"))
    started = await start_run(runtime, "test.ask", {"thread": "shop", "thread_id": thread_id, "timeout_s": 30})
    await wait_for(lambda: thread_view(runtime, console_thread("shop")))
    answered = await ConsoleSession(runtime, user="ada").send("M please", "shop")
    assert answered.status == "completed"
    run = await wait_for(lambda: _finished_id(runtime, started.run_id))
    assert run["output"] == {"answer": "M please"}
    assert await thread_view(runtime, console_thread("shop")) == ["Which size do you want, S, M or L?"]
    assert stand_in.chat_requests() == [], "the answer went to the waiting run, not to a new chat turn"


async def test_unanswered_question_times_out_with_a_nudge(
    runtime: Runtime, clock: FakeClock, worker: asyncio.Task[None]
) -> None:
    thread_id = await ensure_thread(runtime, console_thread("shop"))
    started = await start_run(runtime, "test.ask", {"thread": "shop", "thread_id": thread_id, "timeout_s": 3600})
    await wait_for(lambda: _status_id(runtime, started.run_id, "waiting"))
    clock.advance(timedelta(hours=1))
    run = await wait_for(lambda: _finished_id(runtime, started.run_id))
    assert run["output"] == {"answer": None}
    assert await thread_view(runtime, console_thread("shop")) == [
        "Which size do you want, S, M or L?",
        "No answer, so I'll stop here. Ask again any time.",
    ]


async def _status(rt: Runtime, reply_text: str, status: str) -> bool:
    return bool((await run_of(rt, reply_text))["status"] == status)


async def _finished(rt: Runtime, reply_text: str) -> dict[str, Any] | None:
    run = await run_of(rt, reply_text)
    return run if run["status"] in ("completed", "failed", "cancelled") else None


async def _status_id(rt: Runtime, run_id: int, status: str) -> bool:
    async with rt.autocommit.connect() as conn:
        return bool((await conn.execute(select(RUNS.c.status).where(RUNS.c.id == run_id))).scalar_one() == status)


async def _finished_id(rt: Runtime, run_id: int) -> dict[str, Any] | None:
    async with rt.autocommit.connect() as conn:
        run = dict((await conn.execute(select(RUNS).where(RUNS.c.id == run_id))).mappings().one())
    return run if run["status"] in ("completed", "failed", "cancelled") else None


async def test_the_assistant_schedules_a_followup_itself(
    runtime: Runtime, clock: FakeClock, worker: asyncio.Task[None], stand_in: StandInLLM
) -> None:
    stand_in.script(
        Step(
            reply="Sure, I'll keep an eye on this thread.",
            tool_calls=[{"name": "schedule_followup", "arguments": {"after": "2 hours", "note": "Deploy done?"}}],
        ),
        Step(reply="Ada asked whether the deploy went out; nobody answered."),
    )
    result = await ConsoleSession(runtime, user="ada").send("Nudge us if nobody answers soon.", "deploy")
    assert result.status == "completed"
    assert result.reply.startswith("Sure, I'll keep an eye on this thread.\n\n_(I'll check back here in 2 hours")
    request = stand_in.chat_requests()[0]
    assert [tool["function"]["name"] for tool in request["tools"]] == ["schedule_followup"]
    assert "schedule_followup" in request["messages"][0]["content"]
    async with runtime.autocommit.connect() as conn:
        [followup] = (await conn.execute(select(RUNS.c.id).where(RUNS.c.workflow == "followup"))).scalars().all()
    await wait_for(lambda: _status_id(runtime, followup, "waiting"))
    clock.advance(timedelta(hours=2))
    posts = await wait_for(lambda: _two_posts(runtime, "deploy"))
    assert posts[1] == (
        "👋 Nobody has written here for 2 hours. Deploy done?\n\n"
        "*Where this thread stands:* Ada asked whether the deploy went out; nobody answered."
    )
    summary_prompt = stand_in.chat_requests()[1]["messages"][1]["content"]
    assert "user: Nudge us if nobody answers soon." in summary_prompt


async def test_an_unreadable_followup_from_the_model_is_said_not_scheduled(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM
) -> None:
    stand_in.script(Step(tool_calls=[{"name": "schedule_followup", "arguments": {"after": "whenever"}}]))
    result = await ConsoleSession(runtime, user="ada").send("Check back sometime.", "vague")
    assert result.reply.startswith("_(I couldn't schedule the follow-up: I couldn't read that duration.")
    async with runtime.autocommit.connect() as conn:
        workflows = (await conn.execute(select(RUNS.c.workflow))).scalars().all()
    assert workflows == ["chat_turn"]


async def _two_posts(rt: Runtime, thread: str) -> list[str] | None:
    posts = await thread_view(rt, console_thread(thread))
    return posts if len(posts) >= 2 else None


async def test_scheduled_items_per_user_are_bounded_with_a_reason(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.model_copy(update={"max_scheduled_per_user": 2})
    assert (await COMMANDS.handle(runtime, remind("in 1 hour one"))).accepted
    assert (await COMMANDS.handle(runtime, remind("every day 9am two"))).accepted
    refused = await COMMANDS.handle(runtime, remind("in 2 hours three"))
    assert not refused.accepted
    assert refused.text == (
        "You have 2 reminders and follow-ups scheduled here; the limit is 2. "
        "Cancel some first (/remind list, then /remind cancel ID)."
    )
    assert (await COMMANDS.handle(runtime, remind("in 2 hours for bob", user="bob"))).accepted, "per user"


# The worker fixture runs these beside the bot's own workflows.
TEST_WORKFLOWS = (ask_workflow,)
