"""The outbox around a platform: a replayed post is found, not repeated, and a retried reply that came out
shorter than the attempt before it does not leave that attempt's tail under it."""

from __future__ import annotations

from bot.events import ThreadRef
from bot.runtime import Runtime
from bot.streaming import REPLACED, open_reply
from bot.workflows.outbox import with_outbox
from tests.bot.test_streaming import RecordingPlatform

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
    assert await outbox.posted_beyond("9:reply", 1) == []  # type: ignore[attr-defined]
