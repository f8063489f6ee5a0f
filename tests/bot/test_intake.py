"""Intake: every refusal is a clear message and writes nothing; accepted messages are persisted and queued."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from adapters.console.inbound import to_event
from bot.errors import InvalidInput, NotAllowed, RateLimited
from bot.events import IncomingMessage, ThreadRef
from bot.intake import accept
from bot.models import Message, Thread, Workspace
from bot.runtime import Runtime
from bot.workflows.models import WorkflowRun
from jobs.queue import QUEUE_NAME, job_id


async def row_counts(rt: Runtime) -> tuple[int, int, int]:
    async with rt.sessions() as session:
        counts = []
        for model in (Workspace, Thread, Message):
            counts.append((await session.execute(select(func.count()).select_from(model))).scalar_one())
    return counts[0], counts[1], counts[2]


async def queued_jobs(rt: Runtime) -> int:
    return int(await rt.redis.zcard(QUEUE_NAME))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "Your message is empty"),
        ("   \n\t ", "Your message is empty"),
        ("x" * 8001, "8,001 characters long; the limit is 8,000"),
        (b"caf\xe9 latte", "isn't valid UTF-8 text (bad byte at position 3)"),
        ("bad \ud800 surrogate", "broken characters"),
        ("nul \x00 byte", "NUL character"),
    ],
)
async def test_invalid_input_is_refused_clearly_and_writes_nothing(
    runtime: Runtime, text: str | bytes, expected: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        await accept(runtime, to_event(text, "t1", user="ada"))
    assert expected in refused.value.user_message
    assert await row_counts(runtime) == (0, 0, 0)
    assert await queued_jobs(runtime) == 0


async def test_message_at_the_limit_is_accepted(runtime: Runtime) -> None:
    accepted = await accept(runtime, to_event("x" * 8000, "t1", user="ada"))
    assert accepted.message_id > 0


@pytest.mark.parametrize(
    ("setting", "value", "who"),
    [
        ("allowed_workspaces", "T-other", "this workspace"),
        ("allowed_channels", "C-other", "this channel"),
        ("allowed_users", "bob", "you"),
    ],
)
async def test_allowlists_refuse_outsiders_and_write_nothing(
    runtime: Runtime, setting: str, value: str, who: str
) -> None:
    runtime.settings = runtime.settings.model_copy(update={setting: frozenset({value})})
    with pytest.raises(NotAllowed) as refused:
        await accept(runtime, to_event("hello", "t1", user="ada"))
    assert f"I'm not enabled for {who}" in refused.value.user_message
    assert await row_counts(runtime) == (0, 0, 0)


async def test_allowlists_let_listed_senders_in(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.model_copy(
        update={
            "allowed_workspaces": frozenset({"local"}),
            "allowed_channels": frozenset({"console"}),
            "allowed_users": frozenset({"ada", "bob"}),
        }
    )
    assert (await accept(runtime, to_event("hello", "t1", user="ada"))).message_id > 0


async def test_rate_limit_refuses_the_extra_message_per_user(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.model_copy(update={"rate_limit_per_minute": 3})
    for i in range(3):
        await accept(runtime, to_event(f"message {i}", "t1", user="ada"))
    with pytest.raises(RateLimited) as refused:
        await accept(runtime, to_event("one too many", "t1", user="ada"))
    assert "faster than I can take them (3 a minute)" in refused.value.user_message
    assert 0 < refused.value.retry_after_s <= 60
    assert (await row_counts(runtime))[2] == 3, "the refused message left no row"
    # Another user is not affected.
    await accept(runtime, to_event("hi", "t1", user="bob"))


async def test_duplicate_delivery_does_not_spend_the_rate_limit(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.model_copy(update={"rate_limit_per_minute": 2})
    event = to_event("once", "t1", user="ada", event_id="E1")
    first = await accept(runtime, event)
    for _ in range(3):  # found by the insert itself, each count given back
        again = await accept(runtime, event)
        assert again.duplicate
        assert again.message_id == first.message_id
    await accept(runtime, to_event("twice", "t1", user="ada", event_id="E2"))  # the minute's second message
    for _ in range(2):  # at the limit, a redelivery is still taken as what it is, not refused
        assert (await accept(runtime, event)).duplicate
    with pytest.raises(RateLimited):
        await accept(runtime, to_event("thrice", "t1", user="ada", event_id="E3"))
    assert (await row_counts(runtime))[2] == 2


async def test_accepted_message_is_pending_with_its_run_queued(runtime: Runtime) -> None:
    thread = ThreadRef(platform="slack", workspace_id="T1", channel_id="C1", thread_key="1700000000.000100")
    event = IncomingMessage(
        event_id="Ev42", thread=thread, user_id="U1", text="  café\u0301 ", platform_message_id="m1"
    )
    accepted = await accept(runtime, event)
    assert await queued_jobs(runtime) == 1
    assert await runtime.redis.exists(f"arq:job:{job_id(accepted.run_id, 0)}")
    async with runtime.sessions() as session:
        row = await session.get(Message, accepted.message_id)
        assert row is not None
        assert row.status == "pending"
        assert row.text == "café\u0301".replace("e\u0301", "é")  # trimmed and NFC-normalised
        assert row.run_id == accepted.run_id
        assert row.platform_message_id == "m1"
        run = await session.get(WorkflowRun, accepted.run_id)
        assert run is not None
        expected = {"message_id": accepted.message_id, "platform": "slack"}  # the platform picks the strategy
        assert (run.workflow, run.status, run.input) == ("chat_turn", "pending", expected)


async def test_same_location_reuses_one_thread_and_workspace(runtime: Runtime) -> None:
    for i in range(3):
        await accept(runtime, to_event(f"m{i}", "same", user="ada"))
    await accept(runtime, to_event("other thread", "different", user="ada"))
    assert await row_counts(runtime) == (1, 2, 4)


async def test_lost_enqueue_is_repaired_by_the_platform_retry(runtime: Runtime) -> None:
    event = to_event("hello", "t1", user="ada", event_id="E-lost")
    accepted = await accept(runtime, event)
    await runtime.redis.flushdb()  # the job is lost, as if Redis restarted empty
    again = await accept(runtime, event)
    assert again.duplicate
    assert await queued_jobs(runtime) == 1
    assert await runtime.redis.exists(f"arq:job:{job_id(accepted.run_id, 0)}")
