"""`bot serve discord` and `bot discord sync-commands` as an operator runs them: separate processes talking to the
sandbox Discord over real sockets."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import cast

from typer.testing import CliRunner

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
    assert f"Registered {names} for guild {world.guild}." in " ".join(out.split())
    commands = {c["name"]: c for c in world.fake.commands[world.guild]}
    assert sorted(commands) == sorted(COMMANDS)
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
