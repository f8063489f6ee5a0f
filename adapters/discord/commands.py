"""Slash commands: /ask, /chain, /transcribe, /remind as `app_commands`, routed to `bot.commands`.

Discord drops an interaction not answered within 3 s, so each is deferred (ephemeral, "thinking") before any
work of ours, then completed with an ephemeral follow-up carrying the `CommandReply`. /ask posts the question
in the channel and opens a thread from it, where the answer lands, so everyone sees what was asked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import discord
import structlog
from discord import app_commands

from adapters.discord.inbound import PLATFORM, roles_of, thread_name, thread_ref
from bot.catalog import COMMANDS
from bot.commands import ASKED, ask_message
from bot.errors import UserFacingError
from bot.events import SlashCommand, ThreadRef
from bot.intake import accept, admit
from bot.runtime import Runtime
from bot.stores.messages import thread_of_platform_message
from bot.triggers import ActionKind, MessageAction, take_action

log = structlog.get_logger(__name__)

Handler = Callable[[discord.Interaction[Any], str, str], Awaitable[None]]
DESCRIPTION_CHARS = 100  # Discord's limit for a command's description


def description(name: str) -> str:
    return COMMANDS[name].summary[:DESCRIPTION_CHARS]


def add_commands(tree: app_commands.CommandTree[Any], handler: Handler) -> None:
    """Register every command `bot.commands` knows on `tree`; `handler(interaction, name, text)` runs them.

    /ask takes a required `question`; the others one optional `text`, which `bot.commands` parses (so a command
    added there appears here without a change)."""

    @tree.command(name="ask", description=description("ask"))
    @app_commands.describe(question="What you want to know")
    async def ask(interaction: discord.Interaction[Any], question: str) -> None:
        await handler(interaction, "ask", question)

    for name in COMMANDS:
        if name != "ask":
            tree.add_command(_text_command(name, handler))


# A message's Apps menu (message context-menu commands), and what each does (bot.triggers).
MESSAGE_MENU: dict[str, ActionKind] = {"Summarize thread": "summarize", "Ask about this": "ask"}
MenuHandler = Callable[[discord.Interaction[Any], discord.Message, ActionKind], Awaitable[None]]


def add_message_menu(tree: app_commands.CommandTree[Any], handler: MenuHandler) -> None:
    for name, kind in MESSAGE_MENU.items():
        tree.add_command(_menu_command(name, kind, handler))


def _menu_command(name: str, kind: ActionKind, handler: MenuHandler) -> app_commands.ContextMenu:
    async def run(interaction: discord.Interaction[Any], message: discord.Message) -> None:
        await handler(interaction, message, kind)

    return app_commands.ContextMenu(name=name, callback=run)


async def run_menu(
    runtime: Runtime, interaction: discord.Interaction[Any], message: discord.Message, kind: ActionKind
) -> None:
    """Deferred at once (Discord's 3 s), then the action started and the user told, privately."""
    await interaction.response.defer(ephemeral=True, thinking=True)
    try:
        where = await conversation_of(runtime, message)
        action = MessageAction(
            kind, where, str(interaction.user.id), str(message.id),
            message_text=message.content, roles=roles_of(interaction.user),
        )  # fmt: skip
        reply = await take_action(runtime, action) or "Done."
    except UserFacingError as exc:
        reply = exc.user_message
    except Exception:
        log.exception("discord message menu failed", action=kind, interaction=interaction.id)
        reply = "Something went wrong on my side and I couldn't do that. Try again."
    try:
        await interaction.followup.send(reply, ephemeral=True)
    except discord.HTTPException as exc:
        log.warning("could not complete a message menu command", status=exc.status)


async def conversation_of(runtime: Runtime, message: discord.Message) -> ThreadRef:
    """The conversation a message belongs to: ours if we stored it; else its thread, or the thread that starts
    from it (a channel message the bot opened a thread from has that thread's id), or its channel."""
    guild_id = message.guild.id if message.guild else None
    where = thread_ref(guild_id, message.channel.id)
    found = await thread_of_platform_message(
        runtime, PLATFORM, where.workspace_id, str(message.channel.id), str(message.id)
    )
    if found is not None:
        return found
    channel = message.channel
    if isinstance(channel, discord.Thread) and channel.parent_id is not None:
        return thread_ref(guild_id, channel.parent_id, channel.id)
    return where


def _text_command(name: str, handler: Handler) -> app_commands.Command[Any, ..., None]:
    async def run(interaction: discord.Interaction[Any], text: str = "") -> None:
        await handler(interaction, name, text)

    usage = COMMANDS[name].usage[:DESCRIPTION_CHARS]
    return app_commands.Command(
        name=name, description=description(name), callback=app_commands.describe(text=usage)(run)
    )


async def run_command(runtime: Runtime, interaction: discord.Interaction[Any], name: str, text: str) -> None:
    await interaction.response.defer(ephemeral=True, thinking=True)
    try:
        where = _where(interaction)
        command = SlashCommand(
            event_id=str(interaction.id),
            thread=where,
            user_id=str(interaction.user.id),
            command=name,
            text=text,
            roles=roles_of(interaction.user),
        )
        if name == "ask" and text.strip():
            reply = await _ask(runtime, interaction, command)
        else:
            reply = (await COMMANDS.handle(runtime, command)).text
    except UserFacingError as exc:
        reply = exc.user_message
    except Exception:  # the user is waiting on "thinking…": always complete the interaction
        log.exception("discord command failed", command=name, interaction=interaction.id)
        reply = "Something went wrong on my side and I couldn't take that command. Try again."
    log.info("discord command", command=name, interaction=interaction.id)
    try:
        await interaction.followup.send(reply, ephemeral=True)
    except discord.HTTPException as exc:  # the token lives 15 minutes; past that nobody is listening
        log.warning("could not complete a slash command", command=name, status=exc.status)


async def _ask(runtime: Runtime, interaction: discord.Interaction[Any], command: SlashCommand) -> str:
    """`/ask` posts the question visibly and opens a thread from it, so every message guard runs first: a refused
    question leaves neither behind."""
    event = ask_message(command)
    admitted = await admit(runtime, event)
    if admitted.duplicate is None:
        event = replace(event, thread=await _ask_thread(interaction, command.thread, command.text))
    accepted = await accept(runtime, event, admitted)
    log.info("command accepted", command="ask", message_id=accepted.message_id, duplicate=accepted.duplicate)
    return ASKED


def _where(interaction: discord.Interaction[Any]) -> ThreadRef:
    channel = interaction.channel
    guild_id = interaction.guild_id
    if isinstance(channel, discord.Thread) and channel.parent_id is not None:
        return thread_ref(guild_id, channel.parent_id, channel.id)
    channel_id = interaction.channel_id or 0
    return thread_ref(guild_id, channel_id)


async def _ask_thread(interaction: discord.Interaction[Any], where: ThreadRef, question: str) -> ThreadRef:
    """Post the question visibly and open a thread from it; in a thread or DM, or without permission, the answer
    goes where the command was used."""
    channel = interaction.channel
    if not isinstance(channel, discord.TextChannel) or interaction.guild_id is None:
        return where
    try:
        asked = await channel.send(
            f"{interaction.user.mention} asked: {question}", allowed_mentions=discord.AllowedMentions.none()
        )
        thread = await asked.create_thread(name=thread_name(question), auto_archive_duration=1440)
    except discord.HTTPException as exc:
        log.warning("cannot open a thread for /ask; answering in the channel", channel=channel.id, status=exc.status)
        return where
    return thread_ref(interaction.guild_id, channel.id, thread.id)
