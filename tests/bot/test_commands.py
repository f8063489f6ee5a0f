"""The neutral slash-command layer: what any adapter's /ask, /remind, ... turns into."""

from __future__ import annotations

import asyncio

from adapters.console.inbound import console_thread
from bot.catalog import COMMANDS
from bot.events import SlashCommand
from bot.runtime import Runtime
from sandbox.openai_server import StandInLLM, Step
from tests.conftest import thread_view, wait_for


def command(name: str, text: str, event_id: str = "cmd-1") -> SlashCommand:
    return SlashCommand(event_id=event_id, thread=console_thread("cmds"), user_id="ada", command=name, text=text)


async def test_ask_answers_in_the_commands_thread_once(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM
) -> None:
    stand_in.script(Step(reply="Forty-two."))
    reply = await COMMANDS.handle(runtime, command("/ask", "What is the answer?"))
    assert reply.accepted
    assert "thread" in reply.text
    again = await COMMANDS.handle(runtime, command("/ask", "What is the answer?"))  # the platform's retry
    assert again.accepted
    assert await wait_for(lambda: thread_view(runtime, console_thread("cmds"))) == ["Forty-two."]
    await asyncio.sleep(0.3)
    assert await thread_view(runtime, console_thread("cmds")) == ["Forty-two."]
    assert len(stand_in.chat_requests()) == 1


async def test_ask_without_text_explains_usage(runtime: Runtime) -> None:
    reply = await COMMANDS.handle(runtime, command("ask", "   "))
    assert not reply.accepted
    assert reply.text.startswith("Ask me anything")


async def test_unknown_command_lists_the_known_ones(runtime: Runtime) -> None:
    reply = await COMMANDS.handle(runtime, command("/weather", "Paris"))
    assert not reply.accepted
    assert reply.text == "I don't know /weather. I know /ask, /chain, /transcribe, /remind, /followup."


async def test_refusal_from_intake_reaches_the_user(runtime: Runtime) -> None:
    reply = await COMMANDS.handle(runtime, command("/ask", "x" * (runtime.settings.max_message_chars + 1)))
    assert not reply.accepted
    assert "the limit is" in reply.text
