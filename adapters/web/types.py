"""The web platform's payloads: what the browser posts, and the stream entries it is sent (the console's)."""

from __future__ import annotations

from typing import TypedDict

from adapters.console.types import StreamEntry

__all__ = ["SentMessage", "StreamEntry"]


class SentMessage(TypedDict):
    """The playground's form: a line of text (or a /command) for a thread."""

    thread: str
    text: str
