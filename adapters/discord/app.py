"""Wiring: point discord.py at DISCORD_API_BASE / DISCORD_GATEWAY_URL, run the gateway, sync slash commands."""

from __future__ import annotations

from typing import Any

import discord
import structlog
import yarl
from discord import app_commands
from discord.gateway import DiscordWebSocket

from adapters.discord.commands import add_commands, add_message_menu
from adapters.discord.gateway import DiscordGateway
from bot.config import Settings
from bot.errors import ConfigurationError
from bot.runtime import Runtime

log = structlog.get_logger(__name__)

INTENTS_HELP = (
    "Discord refused the Message Content intent. Turn on 'Message Content Intent' under Bot > Privileged "
    "Gateway Intents in the Discord developer portal (see README, Discord)."
)


def point_discord_py_at(settings: Settings) -> None:
    """discord.py keeps its endpoints in class attributes (`Route.BASE` for REST, follow-up webhooks and
    interaction callbacks; `DiscordWebSocket.DEFAULT_GATEWAY` for the first connection and after an invalidated
    session); set them once per process before a client starts."""
    discord.http.Route.BASE = settings.discord_api_base.rstrip("/")
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)
    # The bot never joins voice channels; warnings about missing voice libraries would only mislead operators.
    discord.VoiceClient.warn_nacl = False
    discord.VoiceClient.warn_dave = False


def require_token(settings: Settings) -> str:
    token = settings.discord_token.get_secret_value()
    if not token:
        raise ConfigurationError("DISCORD_TOKEN is not set: create a bot in the Discord developer portal (README).")
    return token


async def serve(runtime: Runtime) -> None:
    """Run the gateway client until cancelled, handing what it hears to intake on `runtime`."""
    token = require_token(runtime.settings)
    point_discord_py_at(runtime.settings)
    client = DiscordGateway(runtime)
    try:
        async with client:
            await client.start(token)
    except discord.LoginFailure as exc:
        raise ConfigurationError("Discord refused DISCORD_TOKEN; reset the bot token and set it again.") from exc
    except discord.PrivilegedIntentsRequired as exc:
        raise ConfigurationError(INTENTS_HELP) from exc


async def sync_commands(settings: Settings, guild_id: str = "") -> list[str]:
    """Register /ask, /chain, /transcribe and /remind with Discord over REST. A guild gets them at once; global
    commands can take up to an hour to appear everywhere. Returns the registered names."""
    token = require_token(settings)
    point_discord_py_at(settings)

    async def never_run(interaction: discord.Interaction[Any], name: str, text: str) -> None:
        raise RuntimeError("sync-commands only registers commands")

    async def never_menu(interaction: discord.Interaction[Any], message: discord.Message, kind: str) -> None:
        raise RuntimeError("sync-commands only registers commands")

    client = discord.Client(intents=discord.Intents.none())
    tree: app_commands.CommandTree[discord.Client] = app_commands.CommandTree(client)
    add_commands(tree, never_run)
    add_message_menu(tree, never_menu)
    try:
        async with client:
            await client.login(token)
            guild = discord.Object(id=int(guild_id)) if guild_id else None
            if guild is not None:
                tree.copy_global_to(guild=guild)
            synced = await tree.sync(guild=guild)
    except discord.LoginFailure as exc:
        raise ConfigurationError("Discord refused DISCORD_TOKEN; reset the bot token and set it again.") from exc
    log.info("discord commands synced", scope=guild_id or "global", count=len(synced))
    # Slash commands as /name; a message's menu entries by their name, in quotes.
    return [f"/{c.name}" if c.type is discord.AppCommandType.chat_input else f"“{c.name}”" for c in synced]
