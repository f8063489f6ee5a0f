"""The console: `bot ask` and `bot console`. Lines go through `bot.intake` and the arq queue; replies come back
from whichever worker answered, through the thread's Redis stream, exactly like a real platform's."""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import select

from adapters.console.inbound import console_thread, to_event
from adapters.console.outbound import as_text, file_key, safe_filename, stream_key
from bot.config import Settings
from bot.datadir import make_private_dirs, write_private
from bot.events import FileRef
from bot.intake import accept
from bot.models import MESSAGES, THREADS
from bot.runtime import Runtime

m = MESSAGES.c
TERMINAL_STATUSES = ("completed", "failed")


@dataclass
class Transcript:
    """What the thread shows, rebuilt from post/edit entries; `apply` returns the text to print next.

    On a terminal (`in_place`, `width` its columns), an edit of the last message printed is redrawn where it is:
    the cursor goes back to its first row and the screen is cleared from there, so a progress line is updated in
    place. With `render` (Markdown to terminal text) the last message is drawn rendered, and redrawn as it grows,
    since a later delta can change how earlier text renders (a closing `**`). Elsewhere (a pipe, a file) and for
    an earlier message, the new text follows, marked as revised."""

    texts: dict[str, str] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    in_place: bool = False
    width: int = 80
    render: Callable[[str], str] | None = None
    _drawn: str = ""  # the last message as it was drawn (rendered), for moving back over it

    def apply(self, op: str, message_id: str, text: str) -> str:
        if op == "post" or message_id not in self.texts:
            separator = "\n\n" if self.order else ""
            self.order.append(message_id)
            self.texts[message_id] = text
            return separator + self._draw(text)
        old = self.texts[message_id]
        self.texts[message_id] = text
        last = message_id == self.order[-1]
        if text.startswith(old) and not (self.render is not None and self.in_place and last):
            return text[len(old) :]
        if self.in_place and last:
            up = self._rows(self._drawn) - 1
            return "\r" + (f"\x1b[{up}A" if up else "") + "\x1b[J" + self._draw(text)
        return f"\n[revised]\n{text}"  # a retried answer replaced what was streamed before

    def _draw(self, text: str) -> str:
        drawn = self.render(text) if self.render is not None and self.in_place else text
        self._drawn = drawn
        return drawn

    def _rows(self, text: str) -> int:
        """Terminal rows `text` took, its long lines wrapped at `width` (colour codes take none)."""
        plain = _ANSI.sub("", text)
        return sum(max(1, -(-len(line) // max(1, self.width))) for line in plain.split("\n"))

    @property
    def shown(self) -> str:
        return "\n\n".join(self.texts[i] for i in self.order)


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def markdown_renderer(width: int) -> Callable[[str], str]:
    """Markdown as the terminal shows it (rich): bold, code blocks, lists and links, wrapped at `width`."""
    from rich.console import Console
    from rich.markdown import Markdown

    def render(text: str) -> str:
        console = Console(width=width, force_terminal=True, color_system="standard", highlight=False)
        with console.capture() as captured:
            console.print(Markdown(text), end="")
        return captured.get().rstrip("\n")

    return render


def terminal_width() -> int | None:
    """The columns of the terminal replies are printed to, or None when stdout is a pipe or a file."""
    if not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size().columns


def human_size(size: int) -> str:
    for unit, factor in (("MB", 10**6), ("kB", 10**3)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} B"


def uploads_dir(settings: Settings) -> Path:
    return settings.data_dir / "uploads"


async def entry_text(redis: Redis, fields: dict[Any, Any], folder: Path) -> str:
    """What a stream entry shows: its text and, for an uploaded file, a line saying where it was saved."""
    text = as_text(fields[b"text"])
    if b"file" not in fields:
        return text
    line = await _save_upload(redis, fields, folder)
    return f"{text}\n{line}" if text else line


async def _save_upload(redis: Redis, fields: dict[Any, Any], folder: Path) -> str:
    """Saved here, on the reader's disk, since the worker that uploaded it may run on another machine; each time
    it is shown (the same bytes), so a reader elsewhere gets its own copy."""
    message_id = as_text(fields[b"id"])
    name = safe_filename(as_text(fields[b"file"]))
    size = human_size(int(as_text(fields[b"size"])))
    try:
        content = await redis.get(file_key(message_id))
    except (OSError, RedisError) as exc:
        return f"📎 {name} ({size}), not read from Redis: {exc}"
    if content is None:
        return f"📎 {name} ({size}), no longer available"  # kept as long as the post's record, then dropped
    path = (folder / message_id / name).resolve()
    try:
        await asyncio.to_thread(_save, path, content)
    except OSError as exc:
        return f"📎 {name} ({size}), not saved to {path}: {exc.strerror or exc}"
    return f"📎 {name} ({size}) saved to {path}"


def _save(path: Path, content: bytes) -> None:
    write_private(make_private_dirs(path.parent) / path.name, content)


@dataclass
class TurnResult:
    message_id: int
    status: str
    reply: str
    shown: str
    duplicate: bool
    # The thread the message is in (for a duplicate delivery, the first delivery's) and the run answering it.
    thread: str = ""
    run_id: int = 0


class ConsoleSession:
    def __init__(self, runtime: Runtime, *, user: str | None = None, terminal_width: int | None = None) -> None:
        self.runtime = runtime
        self.user = user
        # Set when replies go to a terminal of this many columns: edits are then redrawn in place, and replies are
        # shown as rendered Markdown.
        self.terminal_width = terminal_width
        self._render = markdown_renderer(terminal_width) if terminal_width else None

    async def send(
        self,
        text: str | bytes,
        thread: str,
        *,
        event_id: str | None = None,
        on_text: Callable[[str], None] = lambda _: None,
        timeout_s: float = 300.0,
        worker: asyncio.Task[None] | None = None,
        files: tuple[FileRef, ...] = (),
    ) -> TurnResult:
        """Send one message and follow the thread until the turn is answered or failed.

        Raises `UserFacingError` when intake refuses the message, and TimeoutError after `timeout_s`.
        """
        key = stream_key(console_thread(thread))
        redis = self.runtime.redis
        # Remember where the thread's stream is now, before sending, so no part of the reply can be missed.
        last = await redis.xrevrange(key, count=1)
        cursor: bytes | str = last[0][0] if last else "0-0"
        event = to_event(text, thread, user=self.user, event_id=event_id, files=files)
        accepted = await accept(self.runtime, event)
        width = self.terminal_width
        transcript = Transcript(in_place=width is not None, width=width or 80, render=self._render)
        deadline = time.monotonic() + timeout_s
        while True:
            status = await self._status(accepted.message_id)
            batches = await redis.xread({key: cursor}, count=500, block=None if status in TERMINAL_STATUSES else 200)
            for _, entries in batches or []:
                for entry_id, fields in entries:
                    cursor = entry_id
                    text = await entry_text(redis, fields, uploads_dir(self.runtime.settings))
                    on_text(transcript.apply(as_text(fields[b"op"]), as_text(fields[b"id"]), text))
            if status in TERMINAL_STATUSES and not batches:
                break
            if worker is not None and worker.done():
                raise RuntimeError(
                    f"the worker stopped: {worker.exception() if not worker.cancelled() else 'cancelled'}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"no answer within {timeout_s:.0f} s; is a worker running?")
        reply = await self._reply(accepted.message_id)
        if accepted.duplicate and not transcript.order and reply:
            on_text(reply)  # an earlier delivery was answered already; show that answer
        where = await self._thread_name(accepted.thread_id) if accepted.duplicate else thread
        return TurnResult(
            accepted.message_id, status, reply, transcript.shown or reply, accepted.duplicate, where, accepted.run_id
        )

    async def _thread_name(self, thread_id: int) -> str:
        async with self.runtime.autocommit.connect() as conn:
            return str((await conn.execute(select(THREADS.c.thread_key).where(THREADS.c.id == thread_id))).scalar_one())

    async def _status(self, message_id: int) -> str:
        async with self.runtime.autocommit.connect() as conn:
            return str((await conn.execute(select(m.status).where(m.id == message_id))).scalar_one())

    async def _reply(self, message_id: int) -> str:
        async with self.runtime.autocommit.connect() as conn:
            reply = (await conn.execute(select(m.text).where(m.reply_to_id == message_id))).scalar_one_or_none()
        return str(reply or "")
