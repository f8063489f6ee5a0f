"""A message typed (or a file dropped) in the browser becomes an `IncomingMessage`, as a Slack payload would."""

from __future__ import annotations

import re
import uuid

from adapters.web.outbound import PLATFORM
from bot.events import FileRef, IncomingMessage, SlashCommand, ThreadRef
from bot.media.accept import shared_text

WORKSPACE = "local"
CHANNEL = "web"
# Thread names travel in URLs and Redis keys: short, and nothing that needs escaping.
_THREAD_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def valid_thread_name(name: str) -> bool:
    return bool(_THREAD_NAME.match(name))


def web_thread(name: str) -> ThreadRef:
    return ThreadRef(platform=PLATFORM, workspace_id=WORKSPACE, channel_id=CHANNEL, thread_key=name)


def new_thread_name() -> str:
    return "w-" + uuid.uuid4().hex[:8]


def to_event(
    text: str, thread: str, *, user: str, event_id: str | None = None, files: tuple[FileRef, ...] = ()
) -> IncomingMessage:
    if files and not text:
        text = shared_text(files)
    return IncomingMessage(
        event_id=event_id or uuid.uuid4().hex, thread=web_thread(thread), user_id=user, text=text, files=files
    )


def to_command(typed: str, thread: str, *, user: str, event_id: str | None = None) -> SlashCommand:
    """`/remind in 2 hours ...` typed in the playground: the platform-neutral command, as Slack's would be."""
    command, _, arg = typed.strip().partition(" ")
    return SlashCommand(
        event_id=event_id or f"web-{uuid.uuid4().hex}",
        thread=web_thread(thread),
        user_id=user,
        command=command,
        text=arg.strip(),
    )
