"""The outbox around a platform: a replayed post or upload is found, not repeated, and a retried reply that came
out shorter than the attempt before it does not leave that attempt's tail under it."""

from __future__ import annotations

from typing import cast

import pytest
from sqlalchemy import select

from adapters.console.inbound import console_thread
from adapters.console.outbound import ConsoleOutbound
from bot.events import PostedMessage, ThreadRef
from bot.ports import ChatPlatform
from bot.runtime import Runtime
from bot.streaming import REPLACED, open_reply
from bot.workflows.models import OUTBOX
from bot.workflows.outbox import OutboxPlatform, with_outbox
from tests.bot.test_streaming import RecordingPlatform
from tests.conftest import stream_entries

THREAD = ThreadRef("test", "w", "c", "t")


async def test_a_replayed_post_returns_the_first_and_posts_nothing(runtime: Runtime) -> None:
    platform = RecordingPlatform()
    first = await with_outbox(platform, runtime, 1).post_message(THREAD, "hello", idempotency_key="1:say:0")
    again = await with_outbox(platform, runtime, 1).post_message(THREAD, "hello", idempotency_key="1:say:0")
    assert (again.message_id, again.existed) == (first.message_id, True)
    assert [call for call in platform.calls if call[0] == "post"] == [("post", "hello")]


async def test_a_shorter_retry_replaces_the_earlier_attempts_extra_parts(runtime: Runtime) -> None:
    platform = RecordingPlatform()  # 50 characters a message
    long_answer = "word " * 40  # four messages
    first = open_reply(with_outbox(platform, runtime, 7), THREAD, "7:reply")
    await first.feed(long_answer)
    await first.finish()
    assert len(platform.shown) == 4

    retry = open_reply(with_outbox(platform, runtime, 7), THREAD, "7:reply")  # the step ran again
    await retry.feed("A short answer this time.")
    await retry.finish()
    assert list(platform.shown.values()) == ["A short answer this time.", REPLACED, REPLACED, REPLACED]


async def test_a_first_attempt_does_not_look_for_leftovers(runtime: Runtime) -> None:
    platform = RecordingPlatform()
    outbox = with_outbox(platform, runtime, 9)
    stream = open_reply(outbox, THREAD, "9:reply")
    await stream.feed("fresh")
    await stream.finish()
    assert await cast(OutboxPlatform, outbox).posted_beyond("9:reply", 1) == []


async def upload(platform: ChatPlatform, thread: ThreadRef, key: str) -> PostedMessage:
    return await platform.upload_file(
        thread, filename="transcript.txt", content=b"words\n", title="Transcript", comment="The transcript.",
        idempotency_key=key,
    )  # fmt: skip


async def outbox_row(runtime: Runtime, key: str) -> tuple[str, str | None]:
    async with runtime.autocommit.connect() as conn:
        row = (await conn.execute(select(OUTBOX.c.state, OUTBOX.c.message_id).where(OUTBOX.c.key == key))).one()
    return row.state, row.message_id


async def test_an_upload_replayed_after_sent_uploads_nothing(runtime: Runtime) -> None:
    platform = RecordingPlatform()
    first = await upload(with_outbox(platform, runtime, 3), THREAD, "3:file:0")
    again = await upload(with_outbox(platform, runtime, 3), THREAD, "3:file:0")
    assert (again.message_id, again.existed) == (first.message_id, True)
    assert [call for call in platform.calls if call[0] == "upload"] == [("upload", "transcript.txt recovering=False")]
    assert await outbox_row(runtime, "3:file:0") == ("sent", first.message_id)


class CrashAfterUpload(RecordingPlatform):
    """The worker dies right after the platform took the upload, before the outbox could write `sent`."""

    def __init__(self, platform: ChatPlatform) -> None:
        super().__init__()
        self.platform = platform

    async def upload_file(
        self,
        thread: ThreadRef,
        *,
        filename: str,
        content: bytes,
        title: str,
        comment: str = "",
        idempotency_key: str,
        recovering: bool = False,
    ) -> PostedMessage:
        await self.platform.upload_file(
            thread, filename=filename, content=content, title=title, comment=comment,
            idempotency_key=idempotency_key, recovering=recovering,
        )  # fmt: skip
        raise ConnectionResetError("worker lost")


async def test_an_upload_replayed_after_intent_is_looked_for_and_made_once(runtime: Runtime) -> None:
    console, thread = ConsoleOutbound(runtime.redis), console_thread("media")
    with pytest.raises(ConnectionResetError):
        await upload(with_outbox(CrashAfterUpload(console), runtime, 4), thread, "4:file:0")
    assert await outbox_row(runtime, "4:file:0") == ("intent", None)

    replayed = await upload(with_outbox(console, runtime, 4), thread, "4:file:0")
    assert replayed.existed
    [entry] = await stream_entries(runtime, thread)
    assert (entry["id"], entry["file"]) == (replayed.message_id, "transcript.txt")
    assert await outbox_row(runtime, "4:file:0") == ("sent", replayed.message_id)


async def test_an_upload_after_intent_asks_the_platform_to_look_for_it_first(runtime: Runtime) -> None:
    platform = RecordingPlatform()
    with pytest.raises(ConnectionResetError):
        await upload(with_outbox(CrashAfterUpload(platform), runtime, 5), THREAD, "5:file:0")
    await upload(with_outbox(platform, runtime, 5), THREAD, "5:file:0")
    assert [call for call in platform.calls if call[0] == "upload"] == [
        ("upload", "transcript.txt recovering=False"),
        ("upload", "transcript.txt recovering=True"),
    ]
    assert len(platform.shown) == 1
