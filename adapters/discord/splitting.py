"""Cutting a long reply into Discord messages of at most 2,000 characters without breaking code blocks.

A cut inside a fenced block closes the fence at the end of one message and reopens it (same language) at the
start of the next, so every message renders on its own. Like `bot.streaming.split_text`, only text before a cut
decides where it falls, so messages already sent keep their text while the reply grows.
"""

from __future__ import annotations

import re

FENCE = "```"
CLOSE = "\n```"
# A line that opens or closes a fenced block; the opening one may name a language.
_FENCE_LINE = re.compile(r"^[ \t]*```([^\s`]*)", re.MULTILINE)


def fence_state(text: str) -> str | None:
    """The language of the fenced block `text` ends inside ("" for none named), or None when outside one."""
    open_lang: str | None = None
    for match in _FENCE_LINE.finditer(text):
        open_lang = match.group(1) if open_lang is None else None
    return open_lang


def _last_fence_start(text: str) -> int:
    starts = [m.start() for m in _FENCE_LINE.finditer(text)]
    return starts[-1] if starts else -1


def _cut_in(window: str, floor: int) -> int:
    """Where to cut `window`: the last paragraph, line or word break after `floor`, else its end."""
    for separator in ("\n\n", "\n", " "):
        found = window.rfind(separator, floor)
        if found > 0:
            return found + len(separator)
    return len(window)


def split_message(text: str, limit: int = 2000) -> list[str]:
    """Cut `text` into messages of at most `limit` characters; fenced code stays fenced in every message."""
    if limit <= len(CLOSE) + 40:
        raise ValueError("limit too small to carry code fences")
    parts: list[str] = []
    start = 0
    prefix = ""  # the fence reopened at the top of this message, if the previous one was cut inside a block
    while len(prefix) + len(text) - start > limit:
        budget = limit - len(prefix) - len(CLOSE)  # room for closing a fence we might cut inside
        window = text[start : start + budget]
        cut = _cut_in(window, budget * 4 // 5)
        # A block that opened late in this message goes whole into the next one rather than being cut.
        opened = _last_fence_start(window[:cut])
        if fence_state(prefix + window[:cut]) is not None and opened > budget // 2:
            cut = opened
        body = window[:cut]
        lang = fence_state(prefix + body)
        if lang is None:
            parts.append(prefix + body)
            prefix = ""
        else:
            # Cuts fall after a newline where there is one, so the closing fence sits on its own line.
            parts.append(prefix + body + (FENCE if body.endswith("\n") else CLOSE))
            prefix = f"{FENCE}{lang}\n"
        start += cut
    parts.append(prefix + text[start:])
    return parts


def join_messages(parts: list[str]) -> str:
    """The text the messages were cut from, with the added fences taken out again (exact when no code line was
    longer than a message; for checks and tests)."""
    text = ""
    for index, part in enumerate(parts):
        if index > 0 and fence_state(text) is not None:
            part = part.split("\n", 1)[1]  # the reopened fence
        closed_for_cut = part.endswith(FENCE) and fence_state(text + part[: -len(FENCE)]) is not None
        if index + 1 < len(parts) and closed_for_cut:
            part = part[: -len(FENCE)]  # the fence closed for the cut
        text += part
    return text
