"""Streaming and splitting, with an in-memory platform that records calls (the ChatPlatform test double)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from bot.events import PostedMessage, ThreadRef
from bot.ports import ChatPlatform, FileUpload, PostLedger
from bot.streaming import ReplyStream, pump
from bot.text import split_text

THREAD = ThreadRef("test", "w", "c", "t")


@dataclass
class RecordingPlatform(ChatPlatform):
    """Keeps what a real platform would show, and honours idempotency keys like one."""

    name: str = "test"
    max_message_chars: int = 50
    min_edit_interval_s: float = 1.0
    shown: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)

    async def post_message(
        self, thread: ThreadRef, text: str, *, idempotency_key: str, recovering: bool = False
    ) -> PostedMessage:
        self.calls.append(("post", text))
        if idempotency_key in self.keys:
            return PostedMessage(self.keys[idempotency_key], existed=True)
        message_id = f"m{len(self.shown)}"
        self.keys[idempotency_key] = message_id
        self.shown[message_id] = text
        return PostedMessage(message_id)

    async def edit_message(self, thread: ThreadRef, message_id: str, text: str) -> None:
        self.calls.append(("edit", text))
        self.shown[message_id] = text

    async def show_working(self, thread: ThreadRef, status: str) -> None:
        self.calls.append(("status", status))

    async def upload_file(
        self,
        thread: ThreadRef,
        upload: FileUpload,
        *,
        idempotency_key: str,
        recovering: bool = False,
        ledger: PostLedger | None = None,
    ) -> PostedMessage:
        self.calls.append(("upload", f"{upload.filename} recovering={recovering}"))
        if idempotency_key in self.keys:
            return PostedMessage(self.keys[idempotency_key], existed=True)
        message_id = f"m{len(self.shown)}"
        self.keys[idempotency_key] = message_id
        self.shown[message_id] = f"{upload.comment} [{upload.filename}]"
        return PostedMessage(message_id)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_split_keeps_every_character_and_respects_the_limit() -> None:
    text = ("A paragraph of words. " * 30 + "\n\n") * 5 + "x" * 333
    parts = split_text(text, 100)
    assert "".join(parts) == text
    assert all(len(p) <= 100 for p in parts)
    assert len(parts) > 5


def test_split_prefers_paragraph_breaks() -> None:
    text = "a" * 85 + "\n\n" + "b" * 50
    assert split_text(text, 100) == ["a" * 85 + "\n\n", "b" * 50]


def test_split_cuts_hard_when_there_is_no_break() -> None:
    assert split_text("z" * 250, 100) == ["z" * 100, "z" * 100, "z" * 50]


def test_parts_already_sent_do_not_change_as_the_text_grows() -> None:
    text = "word " * 200
    earlier = split_text(text[:300], 100)
    later = split_text(text, 100)
    assert later[: len(earlier) - 1] == earlier[:-1]


async def test_stream_posts_once_then_edits_at_most_once_per_interval() -> None:
    platform, clock = RecordingPlatform(max_message_chars=10_000), FakeClock()
    stream = ReplyStream(platform, THREAD, "k", clock=clock)
    for word in ["Hello ", "there, ", "how ", "are ", "you?"]:
        await stream.feed(word)
        clock.now += 0.3
    await stream.finish()
    assert platform.calls[0] == ("post", "Hello ")
    assert [kind for kind, _ in platform.calls].count("post") == 1
    assert len(platform.calls) <= 3
    assert platform.shown == {"m0": "Hello there, how are you?"}


async def test_long_reply_continues_in_new_messages() -> None:
    platform, clock = RecordingPlatform(max_message_chars=50, min_edit_interval_s=0), FakeClock()
    stream = ReplyStream(platform, THREAD, "k", clock=clock)
    text = "lorem ipsum dolor sit amet " * 10
    for i in range(0, len(text), 7):
        await stream.feed(text[i : i + 7])
    ids = await stream.finish()
    assert len(ids) == len(split_text(text, 50)) > 1
    assert "".join(platform.shown[i] for i in ids) == text


async def test_retried_stream_edits_what_the_first_attempt_posted() -> None:
    platform = RecordingPlatform(max_message_chars=10_000)
    first = ReplyStream(platform, THREAD, "reply:1")
    await first.feed("A partial ans")  # then the first attempt dies
    second = ReplyStream(platform, THREAD, "reply:1")
    await second.feed("The complete answer.")
    await second.finish()
    assert platform.shown == {"m0": "The complete answer."}


async def _deltas(*parts: str | float | Exception) -> AsyncIterator[str]:
    """A model's stream: strings are deltas, numbers are pauses (seconds), an exception ends it with an error."""
    for part in parts:
        if isinstance(part, Exception):
            raise part
        if isinstance(part, float):
            await asyncio.sleep(part)
        else:
            yield part


async def test_a_reply_that_comes_in_a_rush_is_posted_whole_without_an_edit() -> None:
    platform = RecordingPlatform(max_message_chars=500)
    stream = ReplyStream(platform, THREAD, "r")
    await pump(_deltas("The ", "whole ", "answer ", "at once."), stream)
    await stream.finish()
    assert platform.calls == [("post", "The whole answer at once.")]


async def test_a_slow_reply_still_streams_and_ends_complete() -> None:
    platform = RecordingPlatform(max_message_chars=500)
    stream = ReplyStream(platform, THREAD, "r", min_interval_s=0.0)
    await pump(_deltas("First", 0.05, " second", 0.05, " third."), stream)
    await stream.finish()
    assert platform.calls[0] == ("post", "First")
    assert list(platform.shown.values()) == ["First second third."]


async def test_the_status_is_awaited_before_the_first_post_and_model_errors_propagate() -> None:
    platform = RecordingPlatform(max_message_chars=500)
    stream = ReplyStream(platform, THREAD, "r", min_interval_s=0.0)
    status = asyncio.Event()

    async def working() -> None:
        await asyncio.sleep(0.02)
        platform.calls.append(("status", "is thinking…"))
        status.set()

    with pytest.raises(RuntimeError, match="model broke"):
        await pump(_deltas("Partial", 0.05, RuntimeError("model broke")), stream, working())
    assert platform.calls == [("status", "is thinking…"), ("post", "Partial")]


async def test_a_failing_post_stops_reading_the_model() -> None:
    read: list[str] = []

    async def endless() -> AsyncIterator[str]:
        while True:
            read.append("x")
            yield "x"
            await asyncio.sleep(0.01)

    class Broken(RecordingPlatform):
        async def post_message(
            self, thread: ThreadRef, text: str, *, idempotency_key: str, recovering: bool = False
        ) -> PostedMessage:
            raise OSError("platform down")

    with pytest.raises(OSError, match="platform down"):
        await pump(endless(), ReplyStream(Broken(), THREAD, "r"))
    seen = len(read)
    await asyncio.sleep(0.05)
    assert len(read) == seen, "the model is not read on after the reply failed"
