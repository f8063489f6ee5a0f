from __future__ import annotations

import functools

import pytest

from adapters.console.app import Transcript
from adapters.console.inbound import console_thread
from adapters.console.outbound import MAX_UPLOAD_BYTES, ConsoleOutbound, file_key
from bot.errors import InvalidInput
from bot.ports import FileUpload
from bot.runtime import Runtime
from tests.conftest import stream_entries, thread_view


async def test_a_recovering_post_finds_the_one_posted_under_its_key(runtime: Runtime) -> None:
    outbound = ConsoleOutbound(runtime.redis)
    thread = console_thread("t")
    first = await outbound.post_message(thread, "hello", idempotency_key="reply:1:0")
    await outbound.post_message(thread, "another reply", idempotency_key="reply:2:0")
    again = await outbound.post_message(thread, "hello again", idempotency_key="reply:1:0", recovering=True)
    assert again.message_id == first.message_id
    assert not first.existed
    assert again.existed
    await outbound.edit_message(thread, first.message_id, "hello, edited")
    assert await thread_view(runtime, thread) == ["hello, edited", "another reply"]
    assert [e["op"] for e in await stream_entries(runtime, thread)] == ["post", "post", "edit"]


def test_transcript_prints_only_what_is_new() -> None:
    transcript = Transcript()
    assert transcript.apply("post", "a", "Hel") == "Hel"
    assert transcript.apply("edit", "a", "Hello") == "lo"
    assert transcript.apply("post", "b", "Part two") == "\n\nPart two"
    assert transcript.apply("edit", "a", "Something else") == "\n[revised]\nSomething else"
    assert transcript.shown == "Something else\n\nPart two"


async def test_an_upload_is_one_post_per_key_that_names_its_file(runtime: Runtime) -> None:
    outbound = ConsoleOutbound(runtime.redis)
    thread = console_thread("t")
    upload = functools.partial(
        outbound.upload_file,
        thread,
        FileUpload(filename="transcript.txt", content=b"hello\n", title="Transcript", comment="The transcript."),
        idempotency_key="media:1:file",
    )
    first = await upload()
    again = await upload(recovering=True)
    assert (again.message_id, again.existed, first.existed) == (first.message_id, True, False)
    [entry] = await stream_entries(runtime, thread)
    assert entry == {
        "op": "post", "id": first.message_id, "key": "media:1:file", "text": "The transcript.",
        "file": "transcript.txt", "title": "Transcript", "size": "6",
    }  # fmt: skip
    assert await runtime.redis.get(file_key(first.message_id)) == b"hello\n"
    assert await thread_view(runtime, thread) == ["The transcript."], "readers that know no files show the comment"


async def test_an_upload_too_big_for_redis_is_refused(runtime: Runtime) -> None:
    with pytest.raises(InvalidInput, match="the console keeps files up to"):
        await ConsoleOutbound(runtime.redis).upload_file(
            console_thread("t"),
            FileUpload(filename="big.bin", content=bytes(MAX_UPLOAD_BYTES + 1), title=""),
            idempotency_key="k",
        )
    assert await stream_entries(runtime, console_thread("t")) == []
