"""A message's whole path with real Postgres, Redis, the arq worker and the stand-in LLM over HTTP:
intake -> queue -> worker -> context -> LLM (streamed) -> reply in the thread."""

from __future__ import annotations

import asyncio
import itertools

from sqlalchemy import select
from sqlmodel import col

from adapters.console.app import ConsoleSession
from adapters.console.inbound import console_thread, to_event
from bot.intake import accept
from bot.models import Message
from bot.runtime import Runtime
from bot.workflows.models import STEPS
from jobs.queue import QUEUE_NAME
from sandbox.openai_server import StandInLLM, Step
from tests.conftest import stream_entries, thread_view, wait_for


async def messages(rt: Runtime) -> list[Message]:
    async with rt.sessions() as session:
        return list((await session.execute(select(Message).order_by(col(Message.id)))).scalars())


async def test_reply_lands_in_the_thread_it_came_from(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM
) -> None:
    stand_in.script(Step(reply="Paris is the capital of France."))
    result = await ConsoleSession(runtime, user="ada").send("What is the capital of France?", "geo")
    assert result.status == "completed"
    assert result.reply == "Paris is the capital of France."
    assert await thread_view(runtime, console_thread("geo")) == ["Paris is the capital of France."]
    assert await stream_entries(runtime, console_thread("other")) == []
    rows = await messages(runtime)
    assert [(m.role, m.status) for m in rows] == [("user", "completed"), ("assistant", "completed")]
    assert rows[1].reply_to_id == rows[0].id
    assert rows[0].token_count > 0


async def test_second_message_carries_the_first_exchange(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM
) -> None:
    session = ConsoleSession(runtime, user="ada")
    first = await session.send("Remember the word pineapple.", "memory")
    await session.send("Which word did I ask you to remember?", "memory")
    prompt = stand_in.chat_requests()[-1]["messages"]
    assert prompt[0]["role"] == "system"
    assert [(m["role"], m["content"]) for m in prompt[1:]] == [
        ("user", "Remember the word pineapple."),
        ("assistant", first.reply),
        ("user", "Which word did I ask you to remember?"),
    ]


async def test_same_event_twice_gives_one_job_and_one_reply(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM
) -> None:
    event = to_event("hello once", "dup", user="ada", event_id="Ev123")
    first, second = await asyncio.gather(accept(runtime, event), accept(runtime, event))
    assert first.message_id == second.message_id
    assert sorted([first.duplicate, second.duplicate]) == [False, True]
    await wait_for(lambda: _status(runtime, first.message_id, "completed"))
    third = await accept(runtime, event)  # a late retry after the answer
    assert third.duplicate
    # The run's job leaves the queue just after the message completes; nothing else may be left behind it.
    await wait_for(lambda: _queue_empty(runtime))
    await asyncio.sleep(0.3)
    assert await runtime.redis.zcard(QUEUE_NAME) == 0, "the duplicates queued no second job"
    assert len(stand_in.chat_requests()) == 1
    assert len(await thread_view(runtime, console_thread("dup"))) == 1
    assert [m.role for m in await messages(runtime)] == ["user", "assistant"]


async def test_llm_failing_twice_then_answering_gives_exactly_one_reply(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM
) -> None:
    stand_in.script(Step(status=500), Step(status=429, retry_after=0.2), Step(reply="Third time lucky."))
    result = await ConsoleSession(runtime, user="ada").send("Are you there?", "flaky")
    assert result.status == "completed"
    assert result.reply == "Third time lucky."
    assert len(stand_in.chat_requests()) == 3
    assert await thread_view(runtime, console_thread("flaky")) == ["Third time lucky."]
    user_row = (await messages(runtime))[0]
    assert user_row.error is None
    steps = await step_attempts(runtime, user_row.run_id)
    assert steps == {"context": 1, "reply": 3, "store": 1}, "only the failing step was retried"


async def test_stream_cut_mid_reply_is_retried_into_the_same_message(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM
) -> None:
    text = "one two three four five six seven eight nine ten"
    stand_in.script(Step(reply=text, fail_after_chars=20), Step(reply=text))
    result = await ConsoleSession(runtime, user="ada").send("Count to ten.", "cut")
    assert result.status == "completed"
    entries = await stream_entries(runtime, console_thread("cut"))
    posts = [e for e in entries if e["op"] == "post"]
    assert len(posts) == 1, "the retry edits the partly streamed message instead of posting a second one"
    shown = [e["text"] for e in entries if e["id"] == posts[0]["id"]]
    assert shown[-1] == text
    assert all(len(a) <= len(b) for a, b in itertools.pairwise(shown)), (
        f"the retry never shrank what the user saw: {shown}"
    )


async def test_an_answer_cut_off_for_good_is_replaced_by_the_failure_notice(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM
) -> None:
    text = "one two three four five six seven eight nine ten"
    stand_in.script(*[Step(reply=text, fail_after_chars=20) for _ in range(runtime.settings.llm_max_attempts)])
    result = await ConsoleSession(runtime, user="ada").send("Count to ten.", "cut-for-good")
    assert result.status == "failed"
    view = await thread_view(runtime, console_thread("cut-for-good"))
    assert len(view) == 1, f"no half answer left above the notice: {view}"
    assert view[0].startswith("⚠️ I couldn't answer: the language model kept failing")


async def test_llm_failing_for_good_fails_the_turn_and_worker_keeps_serving(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM
) -> None:
    attempts = runtime.settings.llm_max_attempts
    stand_in.script(*[Step(status=500) for _ in range(attempts)])
    session = ConsoleSession(runtime, user="ada")
    failed = await session.send("This one will fail.", "doomed")
    assert failed.status == "failed"
    thread_posts = await thread_view(runtime, console_thread("doomed"))
    assert len(thread_posts) == 1
    assert "language model kept failing" in thread_posts[0]
    assert f"{attempts} attempts" in thread_posts[0]
    rows = await messages(runtime)
    assert rows[0].status == "failed"
    assert "server error 500" in (rows[0].error or "")
    assert [m.role for m in rows] == ["user"], "no assistant row for a failed turn"

    ok = await session.send("And this one?", "alive")
    assert ok.status == "completed"
    assert "And this one?" in ok.reply


async def test_permanent_llm_error_is_not_retried(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM
) -> None:
    stand_in.script(Step(status=401))
    result = await ConsoleSession(runtime, user="ada").send("hi", "auth")
    assert result.status == "failed"
    assert len(stand_in.chat_requests()) == 1
    assert await thread_view(runtime, console_thread("auth")) == [
        "⚠️ I couldn't answer: The language model refused my credentials. "
        "An administrator needs to check OPENAI_API_KEY."
    ]


async def test_many_conversations_at_once_each_get_their_own_reply(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM
) -> None:
    stand_in.first_token_delay = 0.2
    results = await asyncio.gather(
        *(ConsoleSession(runtime, user=f"user{i}").send(f"question {i}", f"t{i}") for i in range(40))
    )
    assert all(r.status == "completed" for r in results)
    for i, r in enumerate(results):
        assert f'"question {i}"' in r.reply


async def _queue_empty(rt: Runtime) -> bool:
    return bool(await rt.redis.zcard(QUEUE_NAME) == 0)


async def step_attempts(rt: Runtime, run_id: int | None) -> dict[str, int]:
    async with rt.autocommit.connect() as conn:
        rows = await conn.execute(select(STEPS.c.step_id, STEPS.c.attempts).where(STEPS.c.run_id == run_id))
    return {step: attempts for step, attempts in rows}


async def _status(rt: Runtime, message_id: int, wanted: str) -> bool:
    async with rt.sessions() as session:
        status = (await session.execute(select(col(Message.status)).where(col(Message.id) == message_id))).scalar_one()
    return bool(status == wanted)
