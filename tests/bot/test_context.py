"""Context: the newest history within the token budget, in order, flat in cost as the thread grows."""

from __future__ import annotations

from sqlalchemy import text

from adapters.console.inbound import to_event
from bot.context import Preferences, Turn, gather_context
from bot.intake import accept
from bot.runtime import Runtime
from bot.stores.messages import load_turn
from bot.tokens import count_tokens


async def long_thread(rt: Runtime, size: int) -> Turn:
    """A thread of `size` alternating user/assistant messages, then the user's new message."""
    first = await accept(rt, to_event("the first message", "long", user="ada"))
    async with rt.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO messages (thread_id, role, author_id, text, token_count, status, attempts) "
                "SELECT :thread, CASE WHEN n % 2 = 0 THEN 'user' ELSE 'assistant' END, 'ada', "
                "'message number ' || lpad(n::text, 5, '0') || ' ' || repeat('word ', 20), :tokens, 'completed', 0 "
                "FROM generate_series(1, :size) AS n"
            ),
            {
                "thread": first.thread_id,
                "size": size,
                "tokens": count_tokens("message number 00001 " + "word " * 20, rt.settings.openai_model),
            },
        )
    newest = await accept(rt, to_event("what did we say?", "long", user="ada"))
    return await turn_of(rt, newest.message_id)


async def turn_of(rt: Runtime, message_id: int) -> Turn:
    async with rt.autocommit.connect() as conn:
        turn = await load_turn(conn, message_id)
    assert turn is not None
    return turn


async def test_long_thread_is_cut_to_the_budget_keeping_the_newest(runtime: Runtime) -> None:
    settings = runtime.settings.model_copy(update={"context_token_budget": 2000, "context_max_messages": 10_000})
    turn = await long_thread(runtime, 5000)
    async with runtime.autocommit.connect() as conn:
        prompt = await gather_context(conn, settings, turn, None)
    assert prompt.tokens <= 2000
    assert prompt.history_truncated
    assert 0 < prompt.history_included < 5000
    assert sum(count_tokens(m.content, settings.openai_model) for m in prompt.messages) <= 2000
    assert prompt.messages[0].role == "system"
    assert prompt.messages[-1].content == "what did we say?"
    # The newest history comes right before the question, in the thread's order.
    assert prompt.messages[-2].content.startswith("message number 05000 ")
    numbers = [int(m.content.split()[2]) for m in prompt.messages[1:-1]]
    assert numbers == list(range(5001 - len(numbers), 5001))


async def test_row_cap_bounds_the_read(runtime: Runtime) -> None:
    settings = runtime.settings.model_copy(update={"context_token_budget": 1_000_000, "context_max_messages": 50})
    turn = await long_thread(runtime, 500)
    async with runtime.autocommit.connect() as conn:
        prompt = await gather_context(conn, settings, turn, None)
    assert prompt.history_included == 50
    assert prompt.history_truncated


async def test_failed_turns_and_later_messages_stay_out(runtime: Runtime) -> None:
    ok = await accept(runtime, to_event("kept", "t", user="ada"))
    failed = await accept(runtime, to_event("this one failed", "t", user="ada"))
    turn = await accept(runtime, to_event("the question", "t", user="ada"))
    await accept(runtime, to_event("sent after the question", "t", user="ada"))
    async with runtime.engine.begin() as conn:
        await conn.execute(text("UPDATE messages SET status = 'failed' WHERE id = :id"), {"id": failed.message_id})
    async with runtime.autocommit.connect() as conn:
        prompt = await gather_context(conn, runtime.settings, await turn_of(runtime, turn.message_id), None)
    assert [m.content for m in prompt.messages[1:]] == ["kept", "the question"]
    assert ok.thread_id == turn.thread_id


async def test_preferences_shape_the_system_prompt(runtime: Runtime) -> None:
    turn_id = (await accept(runtime, to_event("hola", "t", user="ada"))).message_id
    prefs = Preferences(
        display_name="Ada", timezone="Europe/Madrid", language="Spanish",
        instructions="Keep answers under three sentences.",
    )  # fmt: skip
    async with runtime.autocommit.connect() as conn:
        prompt = await gather_context(conn, runtime.settings, await turn_of(runtime, turn_id), prefs)
    system = prompt.messages[0].content
    assert system.startswith(runtime.settings.system_prompt)
    for fragment in ("name is Ada", "Europe/Madrid", "Answer in Spanish", "under three sentences"):
        assert fragment in system
