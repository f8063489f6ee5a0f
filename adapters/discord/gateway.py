"""The gateway client (`bot serve discord`): messages in, normalised, handed to `bot.intake`; never an LLM call.

A mention in a channel opens a thread from that message and the conversation continues there without further
mentions; where no thread can be opened the bot answers inline and says why. DMs are conversations of their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace

import discord
import structlog
from discord import app_commands
from sqlalchemy import select

from adapters.discord.catchup import catch_up
from adapters.discord.commands import add_commands, add_message_menu, conversation_of, run_command, run_menu
from adapters.discord.inbound import (
    PLATFORM,
    file_refs,
    mentions_user,
    message_text,
    reaction_name,
    roles_of,
    strip_mention,
    thread_name,
    thread_ref,
    to_event,
)
from bot.edits import drop_stored_message, update_stored_text
from bot.errors import UserFacingError
from bot.events import IncomingMessage, ThreadRef
from bot.guards import Admitted
from bot.intake import Accepted, accept, admit
from bot.models import THREADS, WORKSPACES
from bot.runtime import Runtime
from bot.triggers import MessageAction, reaction_chain, take_action

log = structlog.get_logger(__name__)

Intake = Callable[[Runtime, IncomingMessage, Admitted | None], Awaitable[Accepted]]
# Channels a thread can be started from a message in (announcement channels are TextChannels too). A channel
# missing from the cache (PartialMessageable) is tried as well: Discord's answer then decides.
THREADABLE = (discord.TextChannel, discord.PartialMessageable)
# Discord's error code for starting a second thread from one message.
THREAD_ALREADY_CREATED = 160004


def gateway_intents() -> discord.Intents:
    """Guilds (channel and thread cache), guild and DM messages, and the privileged message content."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.dm_messages = True
    intents.message_content = True
    intents.guild_reactions = True  # an emoji that runs a chain (REACTION_CHAINS)
    intents.dm_reactions = True
    return intents


class DiscordGateway(discord.Client):
    def __init__(self, runtime: Runtime, *, intake: Intake = accept) -> None:
        super().__init__(intents=gateway_intents(), allowed_mentions=discord.AllowedMentions.none())
        self.runtime = runtime
        self._intake = intake
        self._catching_up: asyncio.Task[None] | None = None
        self.tree: app_commands.CommandTree[DiscordGateway] = app_commands.CommandTree(self)
        add_commands(self.tree, lambda interaction, name, text: run_command(self.runtime, interaction, name, text))
        add_message_menu(
            self.tree, lambda interaction, message, kind: run_menu(self.runtime, interaction, message, kind)
        )

    async def on_ready(self) -> None:
        """A new session (discord.py resumes dropped ones itself, and Discord replays what they missed): read what
        was said in our conversations while no session was up, in the background."""
        log.info("discord gateway ready", user=str(self.user), guilds=len(self.guilds))
        self._catching_up = asyncio.create_task(self._catch_up())

    async def _catch_up(self) -> None:
        try:
            taken = await catch_up(self, self.runtime, self.on_message)
        except Exception:  # Postgres down: live messages still flow
            log.exception("discord catch-up failed")
            return
        log.info("discord catch-up done", messages_read=taken)

    async def on_message(self, message: discord.Message) -> None:
        me = self.user
        if me is None or message.author.bot or message.webhook_id is not None:  # bots, webhooks, our own posts
            return
        if message.type not in (discord.MessageType.default, discord.MessageType.reply):
            return  # pins, joins, thread renames: Discord's system notices, not something said to the bot
        if not message.content.strip() and not message.attachments:
            return  # a sticker or an embed alone: nothing to answer, and "your message is empty" would be noise
        try:
            where = await self._conversation(message, me.id)
            if where is None:
                return
            ref, open_thread = where
            await self._take(message, ref, open_thread, me.id)
        except UserFacingError as exc:
            await say(message.channel, exc.user_message)
        except Exception:  # Postgres or Redis down, or a bug: tell the user, keep the gateway up
            log.exception("discord message not taken", message=message.id)
            await say(message.channel, "Something went wrong on my side and I couldn't take that message. Try again.")

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        """A configured emoji (REACTION_CHAINS, by name or as the character) runs its chain in the message's
        conversation. Raw: the message may be out of the cache."""
        me = self.user
        if me is None or payload.user_id == me.id:
            return
        raw = payload.emoji.name or ""
        emoji = raw if reaction_chain(self.runtime, raw) is not None else reaction_name(raw)
        if reaction_chain(self.runtime, emoji) is None:
            return
        try:
            channel = self.get_channel(payload.channel_id) or await self.fetch_channel(payload.channel_id)
            message = await channel.fetch_message(payload.message_id)  # type: ignore[union-attr]
            where = await conversation_of(self.runtime, message)
            member_roles = roles_of(payload.member) if payload.member is not None else None
            action = MessageAction(
                "reaction", where, str(payload.user_id), str(payload.message_id), emoji=emoji, roles=member_roles
            )
            await take_action(self.runtime, action)
        except UserFacingError as exc:
            log.info("discord reaction refused", message=payload.message_id, reason=exc.user_message)
        except Exception:  # the gateway stays up
            log.exception("discord reaction not taken", message=payload.message_id)

    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        """An edit of a stored message changes the history the model sees (raw: the message may be out of the
        cache, after a restart). Edits of bots' messages, ours included, and embed-only updates change nothing."""
        data = payload.data
        author = data.get("author") or {}
        me = self.user
        if me is None or author.get("bot") or "content" not in data:
            return
        where = thread_ref(payload.guild_id, payload.channel_id)
        try:
            await update_stored_text(
                self.runtime,
                platform=PLATFORM,
                workspace_id=where.workspace_id,
                channel_id=str(payload.channel_id),
                platform_message_id=str(payload.message_id),
                text=strip_mention(str(data["content"]), me.id),
            )
        except Exception:  # Postgres down: the edit is lost, the gateway stays up
            log.exception("discord edit not stored", message=payload.message_id)

    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        where = thread_ref(payload.guild_id, payload.channel_id)
        try:
            await drop_stored_message(
                self.runtime,
                platform=PLATFORM,
                workspace_id=where.workspace_id,
                channel_id=str(payload.channel_id),
                platform_message_id=str(payload.message_id),
            )
        except Exception:
            log.exception("discord deletion not stored", message=payload.message_id)

    async def _take(self, message: discord.Message, ref: ThreadRef, open_thread: bool, me_id: int) -> None:
        files = file_refs(message.attachments)
        text = message_text(strip_mention(message.content, me_id), files)
        event = to_event(message, ref, text, files)
        # Every guard runs before a thread is opened: a refused message must not leave an empty thread behind.
        admitted = await admit(self.runtime, event)
        if open_thread and admitted.duplicate is None:  # a redelivered mention has its thread already
            event = replace(event, thread=await self._open_thread(message, ref, text))
        accepted = await self._intake(self.runtime, event, admitted)
        log.info(
            "discord message taken", message=message.id, thread=event.thread.thread_key, duplicate=accepted.duplicate
        )

    async def _conversation(self, message: discord.Message, me_id: int) -> tuple[ThreadRef, bool] | None:
        """Where this message's conversation lives and whether a thread must be opened for it; None when the
        message is not for the bot."""
        channel = message.channel
        guild_id = message.guild.id if message.guild else None
        if guild_id is None:
            return thread_ref(None, channel.id), False
        mentioned = mentions_user(message, me_id)
        if isinstance(channel, discord.Thread):
            # Threads the bot opened continue without mentions; in other people's threads it answers when asked.
            if mentioned or channel.owner_id == me_id:
                return thread_ref(guild_id, channel.parent_id, channel.id), False
            return None
        if not mentioned:
            if isinstance(channel, discord.PartialMessageable):
                # Maybe a thread of ours the cache lost (archived, then revived by this message): Postgres knows.
                parent = await self._thread_parent(guild_id, channel.id)
                if parent is not None:
                    return thread_ref(guild_id, int(parent), channel.id), False
            return None
        return thread_ref(guild_id, channel.id), True

    async def _thread_parent(self, guild_id: int, channel_id: int) -> str | None:
        t, w = THREADS.c, WORKSPACES.c
        query = (
            select(t.channel_id)
            .join(WORKSPACES, w.id == t.workspace_id)
            .where(w.platform == PLATFORM, w.external_id == str(guild_id))
            .where(t.platform == PLATFORM, t.thread_key == str(channel_id))
            .limit(1)
        )
        async with self.runtime.autocommit.connect() as conn:
            found = (await conn.execute(query)).scalar_one_or_none()
        return None if found is None else str(found)

    async def _open_thread(self, message: discord.Message, ref: ThreadRef, text: str) -> ThreadRef:
        """Start a thread from the message; where that is impossible, say why and answer inline."""
        channel = message.channel
        if not isinstance(channel, THREADABLE):
            await say(channel, "Threads can't be opened in this kind of channel, so I'll answer right here.")
            return ref
        try:
            thread = await message.create_thread(name=thread_name(text), auto_archive_duration=1440)
        except discord.Forbidden:
            log.warning("cannot open a thread: missing Create Public Threads permission", channel=channel.id)
            await say(
                channel,
                "I can't open a thread here (I lack the Create Public Threads permission), so I'll answer right here.",
            )
            return ref
        except discord.HTTPException as exc:
            if exc.code == THREAD_ALREADY_CREATED:
                # A redelivered message (gateway resume, restart): the thread is there already, with its id.
                return thread_ref(int(ref.workspace_id), channel.id, message.id)
            log.warning("cannot open a thread", channel=channel.id, status=exc.status, code=exc.code)
            await say(channel, "I couldn't open a thread for this, so I'll answer right here.")
            return ref
        return thread_ref(int(ref.workspace_id), channel.id, thread.id)


async def say(channel: discord.abc.Messageable, text: str) -> None:
    """Tell the channel something; when even that is not allowed, the operator reads it in the log instead."""
    try:
        await channel.send(text, allowed_mentions=discord.AllowedMentions.none())
    except discord.Forbidden:
        log.warning("cannot send in channel: missing Send Messages permission", channel=getattr(channel, "id", None))
    except discord.HTTPException as exc:
        log.warning("could not send in channel", channel=getattr(channel, "id", None), status=exc.status)
