"""`bot serve discord` and `bot discord sync-commands` as an operator runs them: separate processes talking to the
sandbox Discord over real sockets."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import cast

from typer.testing import CliRunner

from adapters.discord.commands import MESSAGE_MENU
from bot.catalog import COMMANDS
from bot.config import Settings
from bot.runtime import Runtime
from cli.main import app
from sandbox.openai_server import StandInLLM, Step
from tests.adapters.discord.conftest import World, answered
from tests.conftest import run_bot, subprocess_env, wait_for


def discord_env(settings: Settings) -> dict[str, str]:
    return {
        **subprocess_env(settings),
        "DISCORD_TOKEN": settings.discord_token.get_secret_value(),
        "DISCORD_API_BASE": settings.discord_api_base,
        "DISCORD_GATEWAY_URL": settings.discord_gateway_url,
    }


def test_serve_discord_without_a_token_says_what_to_do() -> None:
    result = CliRunner().invoke(app, ["serve", "discord"])
    assert result.exit_code == 3
    assert "DISCORD_TOKEN is not set" in result.output


def test_sync_commands_refuses_a_guild_that_is_not_an_id() -> None:
    result = CliRunner().invoke(app, ["discord", "sync-commands", "--guild", "my server"], env={"DISCORD_TOKEN": "t"})
    assert result.exit_code == 2
    assert "--guild must be a guild id" in result.output


async def test_sync_commands_registers_every_command_in_a_guild(world: World, settings: Settings) -> None:
    code, out, err = await run_bot("discord", "sync-commands", "--guild", world.guild, env=discord_env(settings))
    assert code == 0, err
    names = ", ".join(f"/{name}" for name in COMMANDS)  # /ask, /chain, /transcribe, /remind, and any added later
    menus = ", ".join(f"“{name}”" for name in MESSAGE_MENU)  # a message's Apps menu
    assert f"Registered {names}, {menus} for guild {world.guild}." in " ".join(out.split())
    commands = {c["name"]: c for c in world.fake.commands[world.guild] if c.get("type", 1) == 1}
    assert sorted(commands) == sorted(COMMANDS)
    menu = {c["name"] for c in world.fake.commands[world.guild] if c.get("type") == 3}
    assert menu == set(MESSAGE_MENU)
    assert commands["ask"]["description"] == "Ask me anything; I answer in a thread."
    assert [(o["name"], o["required"]) for o in commands["ask"]["options"]] == [("question", True)]
    chain_text = commands["chain"]["options"][0]
    assert (chain_text["name"], chain_text["required"]) == ("text", False)
    assert chain_text["description"] == "/chain list | /chain run NAME [text]"
    assert "global" not in world.fake.commands


async def test_serve_discord_answers_a_mention_in_a_thread(
    world: World, settings: Settings, runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM
) -> None:
    stand_in.script(Step(reply="Served from the gateway process."))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", "serve", "discord", env=discord_env(settings),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await asyncio.wait_for(world.fake.identified.wait(), 30)
        await wait_for(lambda: world.fake.intents is not None)
        asked = await world.fake.user_message(world.general, "are you up?", author=world.ada, mention_bot=True)
        await wait_for(lambda: answered(runtime, 1), timeout_s=30)
        assert world.fake.bot_texts(asked["id"]) == ["Served from the gateway process."]
        message_content_intent = 1 << 15
        assert cast(int, world.fake.intents) & message_content_intent  # set: waited for above
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert settings.discord_token.get_secret_value() not in stderr.decode(), "the token never reaches the log"


async def test_a_killed_gateway_restarted_answers_what_was_said_while_it_was_down_once(
    world: World, settings: Settings, runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM
) -> None:
    async def start() -> asyncio.subprocess.Process:
        world.fake.identified.clear()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cli", "serve", "discord", "--no-worker", env=discord_env(settings),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        await asyncio.wait_for(world.fake.identified.wait(), 30)
        return proc

    stand_in.script(Step(reply="Before the crash."))
    first = await start()
    asked = await world.fake.user_message(world.general, "are you up?", author=world.ada, mention_bot=True)
    await wait_for(lambda: answered(runtime, 1), timeout_s=30)
    first.kill()  # SIGKILL: no goodbye, no chance to note anything
    await first.wait()

    # Said while no gateway session was up: Discord keeps it, but a new session is not sent it.
    await world.fake.user_message(asked["id"], "still there? in the thread", author=world.ada)
    mention = await world.fake.user_message(world.general, "and a new question", author=world.ada, mention_bot=True)
    # Unscripted, the stand-in quotes each question: the two catch-up answers can come in either order.
    second = await start()
    try:
        await wait_for(lambda: answered(runtime, 3), timeout_s=30)
        before, caught_up = world.fake.bot_texts(asked["id"])
        assert before == "Before the crash."
        assert 'You said: "still there? in the thread"' in caught_up
        [answer] = world.fake.bot_texts(mention["id"])
        assert 'You said: "and a new question"' in answer
        await asyncio.sleep(1.0)  # room for a second answer to anything, which must not come
        assert len(stand_in.chat_requests()) == 3
    finally:
        second.send_signal(signal.SIGINT)
        await asyncio.wait_for(second.wait(), 30)
