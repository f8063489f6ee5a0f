"""A line typed at the console becomes an `IncomingMessage`, exactly as a Slack or Discord payload would."""

from __future__ import annotations

import getpass
import uuid

from adapters.console.outbound import PLATFORM
from bot.events import FileRef, IncomingMessage, ThreadRef
from bot.media.accept import shared_text

WORKSPACE = "local"
CHANNEL = "console"


def console_thread(name: str) -> ThreadRef:
    return ThreadRef(platform=PLATFORM, workspace_id=WORKSPACE, channel_id=CHANNEL, thread_key=name)


def to_event(
    text: str | bytes,
    thread: str,
    *,
    user: str | None = None,
    event_id: str | None = None,
    files: tuple[FileRef, ...] = (),
) -> IncomingMessage:
    if files and not text:
        text = shared_text(files)
    return IncomingMessage(
        event_id=event_id or uuid.uuid4().hex,
        thread=console_thread(thread),
        user_id=user or getpass.getuser(),
        text=text,
        files=files,
    )


def new_thread_name() -> str:
    return "t-" + uuid.uuid4().hex[:8]
