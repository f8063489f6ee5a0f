"""Discord messages and interactions to `bot.events`: where a conversation lives, what the user said, which
files came with it, and whether the user's roles let them in. No I/O here."""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Iterable

import discord

from bot.events import FileRef, IncomingMessage, Roles, ThreadRef
from bot.media.accept import shared_text

PLATFORM = "discord"
# Direct messages belong to no guild; this stands for them in ThreadRef.workspace_id and ALLOWED_WORKSPACES.
DM_WORKSPACE = "dm"
THREAD_NAME_CHARS = 90


def thread_ref(guild_id: int | None, channel_id: int, thread_key: int | None = None) -> ThreadRef:
    """`channel_id` is the channel people see in the sidebar (a thread's parent), which the channel allowlist
    names; `thread_key` is where replies are posted."""
    key = channel_id if thread_key is None else thread_key
    workspace = DM_WORKSPACE if guild_id is None else str(guild_id)
    return ThreadRef(PLATFORM, workspace, str(channel_id), str(key))


def mentions_user(message: discord.Message, user_id: int) -> bool:
    # Not `mentioned_in`: an @everyone or @here must not make the bot answer.
    return any(user.id == user_id for user in message.mentions)


def strip_mention(content: str, user_id: int) -> str:
    return re.sub(rf"<@!?{user_id}>", "", content).strip()


def file_refs(attachments: Iterable[discord.Attachment]) -> tuple[FileRef, ...]:
    return tuple(
        FileRef(
            file_id=str(a.id),
            name=a.filename,
            mime_type=a.content_type or mimetypes.guess_type(a.filename)[0] or "application/octet-stream",
            size=a.size,
            url=a.url,
        )
        for a in attachments
    )


def message_text(content: str, files: tuple[FileRef, ...]) -> str:
    """A message with only attachments still says something, for the thread's history and the media flow."""
    if content or not files:
        return content
    return shared_text(files)


def thread_name(text: str) -> str:
    first_line = (text.splitlines() or [""])[0].strip()
    if not first_line:
        return "Conversation"
    return first_line if len(first_line) <= THREAD_NAME_CHARS else first_line[: THREAD_NAME_CHARS - 1] + "…"


def roles_of(user: discord.User | discord.Member) -> Roles:
    """A member's role ids and names, for `ALLOWED_ROLES`; a user outside a server has none that can be read."""
    if not isinstance(user, discord.Member):
        return Roles(known=False)
    return Roles(frozenset(name for role in user.roles for name in (str(role.id), role.name)))


def to_event(message: discord.Message, where: ThreadRef, text: str, files: tuple[FileRef, ...]) -> IncomingMessage:
    author = message.author
    return IncomingMessage(
        event_id=str(message.id),
        thread=where,
        user_id=str(author.id),
        text=text,
        platform_message_id=str(message.id),
        user_name=author.display_name,
        files=files,
        roles=roles_of(author),
    )


# Discord sends a Unicode emoji as the character itself; REACTION_CHAINS may name it as Slack does.
_EMOJI_NAMES = {"📝": "memo", "🗒️": "spiral_note_pad", "🧵": "thread", "❓": "question", "✅": "white_check_mark"}


def reaction_name(emoji: str) -> str:
    return _EMOJI_NAMES.get(emoji, emoji)
