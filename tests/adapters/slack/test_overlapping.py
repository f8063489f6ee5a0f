"""Messages that overlap in one Slack thread (CONVERSATION_STRATEGY), through the sandbox and a real worker."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from bot.runtime import Runtime
from bot.workflows.models import RUNS
from sandbox.openai_server import StandInLLM, Step
from sandbox.slack_server import SlackSandbox
from tests.adapters.slack.conftest import CHANNEL, SlackEvents, mention, new_ts, stored_messages
from tests.adapters.slack.test_files import file_payload
from tests.conftest import run_status_is, wait_for


def asked(stand_in: StandInLLM, index: int) -> list[tuple[str, str]]:
    """What the model was given in its `index`th request, after the system prompt."""
    return [(m["role"], m["content"]) for m in stand_in.chat_requests()[index]["messages"][1:]]


def replies(slack: SlackSandbox, root: str) -> list[str]:
    return [m.text for m in slack.thread(CHANNEL, root)]


@pytest.mark.slack_settings(burst_window_s=0.8)
async def test_three_lines_within_a_second_get_one_answer_that_sees_all_three(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM, slack: SlackSandbox, slack_http: SlackEvents
) -> None:
    stand_in.script(Step(reply="A warm-up answer."), Step(reply="One answer to all three."))
    # The adapter's first request is slow to answer (imports, connections): warm it up in another thread first.
    warm_up = new_ts()
    await slack_http.event(mention("hello", ts=warm_up))
    await wait_for(lambda: replies(slack, warm_up))

    root = new_ts()
    lines = ["I'm planning the offsite.", "It's for 12 people.", "Where should we go?"]
    await slack_http.event(mention(lines[0], ts=root))
    for line in lines[1:]:
        await asyncio.sleep(0.3)
        await slack_http.event(mention(line, thread_ts=root))

    await wait_for(lambda: replies(slack, root))
    await asyncio.sleep(0.6)  # room for a second answer, which must not come
    assert replies(slack, root) == ["One answer to all three."]
    assert len(stand_in.chat_requests()) == 2
    assert asked(stand_in, 1) == [("user", line) for line in lines]
    stored = [m for m in await stored_messages(runtime) if m.text not in ("hello", "A warm-up answer.")]
    assert [(m.role, m.status) for m in stored] == [("user", "completed")] * 3 + [("assistant", "completed")]


@pytest.mark.slack_settings(burst_window_s=0.05)
async def test_a_message_sent_during_an_answer_is_answered_after_it_seeing_that_answer(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM, slack: SlackSandbox, slack_http: SlackEvents
) -> None:
    stand_in.token_delay = 0.05  # the first answer takes about a second to write
    first_answer = "Lisbon is a good choice: mild weather, short flights, and plenty of venues for a group."
    stand_in.script(Step(reply=first_answer), Step(reply="Then Porto."))
    root = new_ts()
    await slack_http.event(mention("Where should the offsite be?", ts=root))
    await wait_for(lambda: len(stand_in.chat_requests()) == 1)
    await asyncio.sleep(0.2)
    await slack_http.event(mention("Actually, somewhere smaller?", thread_ts=root))

    await wait_for(lambda: "Then Porto." in replies(slack, root), timeout_s=20)
    assert replies(slack, root) == [first_answer, "Then Porto."]
    assert asked(stand_in, 1) == [
        ("user", "Where should the offsite be?"),
        ("assistant", first_answer),
        ("user", "Actually, somewhere smaller?"),
    ]


@pytest.mark.slack_settings(conversation_strategy="queue")
async def test_queued_messages_are_answered_one_by_one_in_order(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM, slack: SlackSandbox, slack_http: SlackEvents
) -> None:
    stand_in.token_delay = 0.02
    stand_in.script(Step(reply="First, the venue."), Step(reply="Second, the date."))
    root = new_ts()
    await slack_http.event(mention("Venue?", ts=root))
    await slack_http.event(mention("Date?", thread_ts=root))

    await wait_for(lambda: "Second, the date." in replies(slack, root), timeout_s=20)
    assert replies(slack, root) == ["First, the venue.", "Second, the date."]
    assert asked(stand_in, 0) == [("user", "Venue?")]
    assert asked(stand_in, 1) == [("user", "Venue?"), ("assistant", "First, the venue."), ("user", "Date?")]


@pytest.mark.slack_settings(conversation_strategy="interrupt", workflow_lease_s=0.6)
async def test_a_new_message_interrupts_the_answer_being_written_and_is_answered_with_both(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM, slack: SlackSandbox, slack_http: SlackEvents
) -> None:
    stand_in.token_delay = 0.1
    long_answer = " ".join(f"word{i}" for i in range(200))  # about 20 s to write: it is cut long before
    stand_in.script(Step(reply=long_answer), Step(reply="Short answer, with the correction."))
    root = new_ts()
    await slack_http.event(mention("Tell me everything about Lisbon.", ts=root))
    await wait_for(lambda: [t for t in replies(slack, root) if t.startswith("word0")])
    await slack_http.event(mention("Sorry, I meant Porto. Keep it short.", thread_ts=root))

    await wait_for(lambda: "Short answer, with the correction." in replies(slack, root), timeout_s=20)
    await wait_for(lambda: run_status_is(runtime, 2, "completed"))
    shown = replies(slack, root)
    assert len(shown) == 2
    assert shown[0].startswith("word0")
    assert len(shown[0]) < len(long_answer), "the first answer was stopped where it was"
    assert asked(stand_in, 1) == [
        ("user", "Tell me everything about Lisbon."),
        ("user", "Sorry, I meant Porto. Keep it short."),
    ]
    async with runtime.autocommit.connect() as conn:
        statuses = (await conn.execute(select(RUNS.c.status, RUNS.c.error).order_by(RUNS.c.id))).all()
    assert statuses[0].status == "cancelled"
    assert "interrupted by a newer message" in (statuses[0].error or "")
    assert statuses[1].status == "completed"
    stored = await stored_messages(runtime)
    assert [(m.role, m.status) for m in stored] == [("user", "completed")] * 2 + [("assistant", "completed")]


@pytest.mark.slack_settings(burst_window_s=0.3)
async def test_a_file_shared_during_a_burst_goes_its_own_way_and_does_not_hold_the_answer(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM, slack: SlackSandbox, slack_http: SlackEvents
) -> None:
    notes = slack.add_file("notes.txt", b"Ada: we ship on Friday.\nLin: the budget review is next week.\n")
    stand_in.script(Step(reply="Here to help."))
    root = new_ts()
    await slack_http.event(mention("Can you help with the launch?", ts=root))
    await slack_http.event({**mention("notes attached", thread_ts=root), "files": [file_payload(slack, notes)]})

    # The question is answered after its window, not after TURN_WAIT_MAX_S behind the file's media run.
    await wait_for(lambda: "Here to help." in replies(slack, root), timeout_s=10)
    await wait_for(lambda: [t for t in replies(slack, root) if t.startswith("✅ notes.txt")], timeout_s=30)
    assert "Shared" not in str(stand_in.chat_requests()[0]["messages"]), "the file is not part of the chat turn"
