from __future__ import annotations

from adapters.console.app import Transcript
from adapters.console.inbound import console_thread
from adapters.console.outbound import ConsoleOutbound
from bot.runtime import Runtime
from tests.conftest import stream_entries, thread_view


async def test_post_is_idempotent_per_key(runtime: Runtime) -> None:
    outbound = ConsoleOutbound(runtime.redis)
    thread = console_thread("t")
    first = await outbound.post_message(thread, "hello", idempotency_key="reply:1:0")
    again = await outbound.post_message(thread, "hello again", idempotency_key="reply:1:0")
    assert again.message_id == first.message_id
    assert not first.existed
    assert again.existed
    await outbound.edit_message(thread, first.message_id, "hello, edited")
    assert await thread_view(runtime, thread) == ["hello, edited"]
    assert [e["op"] for e in await stream_entries(runtime, thread)] == ["post", "edit"]


def test_transcript_prints_only_what_is_new() -> None:
    transcript = Transcript()
    assert transcript.apply("post", "a", "Hel") == "Hel"
    assert transcript.apply("edit", "a", "Hello") == "lo"
    assert transcript.apply("post", "b", "Part two") == "\n\nPart two"
    assert transcript.apply("edit", "a", "Something else") == "\n[revised]\nSomething else"
    assert transcript.shown == "Something else\n\nPart two"
