"""The outbound port against the sandbox over HTTP: long answers, 429s, msg_too_long, idempotent posts, uploads.
Most tests use Slack behind the outbox, as a workflow step does (`ctx.platform`): Postgres is the record of what
was posted, Slack's metadata where a recovering attempt looks."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import update

from adapters.slack.keys import upload_marker
from adapters.slack.outbound import SlackOutbound
from adapters.slack.webapi import fixed_token, web_client
from bot.errors import TransientUpstreamError
from bot.events import ThreadRef
from bot.ports import FileUpload
from bot.runtime import Runtime
from bot.workflows.models import OUTBOX
from bot.workflows.outbox import OutboxPlatform
from sandbox.openai_server import StandInLLM, Step, long_text
from sandbox.slack_server import MAX_TEXT_CHARS, TEAM_ID, Failure, SlackSandbox
from tests.adapters.slack.conftest import CHANNEL, DM, SlackEvents, mention, message
from tests.conftest import rate_limited, wait_for


def bare(slack: SlackSandbox, *, native_streaming: bool = True) -> SlackOutbound:
    return SlackOutbound(
        web_client(None, slack.api_url), fixed_token(slack.bot_token), native_streaming=native_streaming
    )


def outbound(runtime: Runtime, slack: SlackSandbox, platform: SlackOutbound | None = None) -> OutboxPlatform:
    """A new attempt's view of Slack (each call is a step that ran again after a crash)."""
    return OutboxPlatform(platform or bare(slack), runtime, 1)


async def forget_sent(runtime: Runtime, key: str, *, note: bool = False) -> None:
    """As if the worker died between Slack's answer and the outbox's `sent` (and, with `note`, before it noted the
    file id too)."""
    values: dict[str, object] = {"state": "intent", "message_id": None}
    if note:
        values["note"] = None
    async with runtime.autocommit.connect() as conn:
        await conn.execute(update(OUTBOX).where(OUTBOX.c.key == key).values(**values))


def thread(ts: str = "1690000000.999999", channel: str = CHANNEL) -> ThreadRef:
    return ThreadRef("slack", TEAM_ID, channel, ts)


@pytest.mark.slack_settings(max_reply_tokens=4000)
@pytest.mark.parametrize(("channel", "channel_type"), [(CHANNEL, "channel"), (DM, "im")])
async def test_a_10000_character_answer_arrives_complete_in_several_messages(
    channel: str,
    channel_type: str,
    runtime: Runtime,
    worker: asyncio.Task[None],
    stand_in: StandInLLM,
    slack: SlackSandbox,
    slack_http: SlackEvents,
) -> None:
    answer = long_text(10_000)
    stand_in.script(Step(reply=answer))
    stand_in.chunk_words = 40
    event = (
        mention("Write a long essay.")
        if channel == CHANNEL
        else message("Write a long essay.", channel=DM, channel_type="im")
    )
    await slack_http.event(event)
    await wait_for(lambda: sum(len(m.text) for m in slack.thread(channel, event["ts"])) >= len(answer), timeout_s=30)
    await wait_for(lambda: not any(m.streaming for m in slack.thread(channel, event["ts"])))
    parts = [m.text for m in slack.thread(channel, event["ts"])]
    assert len(parts) >= 3
    assert all(len(p) <= MAX_TEXT_CHARS for p in parts)
    assert "".join(parts) == answer


async def test_a_429_is_waited_out_and_the_reply_still_arrives(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM, slack: SlackSandbox, slack_http: SlackEvents
) -> None:
    stand_in.script(Step(reply="Worth the wait."))
    slack.fail(Failure("chat.postMessage", retry_after=1))
    limited = rate_limited("slack")
    event = mention("Are you there?")
    await slack_http.event(event)
    await wait_for(lambda: [m for m in slack.thread(CHANNEL, event["ts"]) if m.text == "Worth the wait."])
    assert rate_limited("slack") == limited + 1, "counted for /metrics"
    posts = slack.calls_to("chat.postMessage")
    assert len(posts) == 2, "the rate-limited post was retried, once"
    assert posts[1].at - posts[0].at >= 1.0, "Retry-After was obeyed"
    assert len(slack.thread(CHANNEL, event["ts"])) == 1


async def test_a_persistent_429_becomes_a_transient_error(runtime: Runtime, slack: SlackSandbox) -> None:
    slack.fail(*[Failure("chat.postMessage", retry_after=0) for _ in range(4)])
    with pytest.raises(TransientUpstreamError):
        await outbound(runtime, slack).post_message(thread(), "hello", idempotency_key="k-429")
    assert slack.messages == []


async def test_msg_too_long_is_split_and_retried(runtime: Runtime, slack: SlackSandbox) -> None:
    slack.fail(Failure("chat.postMessage", error="msg_too_long"))
    text = long_text(3000)
    posted = await outbound(runtime, slack).post_message(thread(), text, idempotency_key="k-long")
    parts = slack.thread(CHANNEL, thread().thread_key)
    assert len(parts) == 2
    assert parts[0].ts == posted.message_id
    assert "".join(p.text for p in parts) == text


async def test_same_key_never_posts_twice_and_recovery_finds_the_message_by_metadata(
    runtime: Runtime, slack: SlackSandbox
) -> None:
    first = await outbound(runtime, slack).post_message(thread(), "*once*", idempotency_key="k-once")
    await runtime.redis.flushdb()  # Redis holds no record of posts: losing it changes nothing
    again = await outbound(runtime, slack).post_message(thread(), "*once*", idempotency_key="k-once")
    assert (first.existed, again.existed, again.message_id) == (False, True, first.message_id)
    assert slack.calls_to("conversations.replies") == [], "a sent post is known without asking Slack"

    await forget_sent(runtime, "k-once")
    recovered = await outbound(runtime, slack).post_message(thread(), "*once*", idempotency_key="k-once")
    assert recovered.message_id == first.message_id
    assert recovered.existed
    assert len(slack.calls_to("conversations.replies")) == 1
    assert slack.calls_to("conversations.replies")[0].args["include_all_metadata"] in (True, "1", "true")
    assert [m.text for m in slack.thread(CHANNEL, thread().thread_key)] == ["_once_"]


async def test_markdown_is_posted_as_mrkdwn_and_edits_too(runtime: Runtime, slack: SlackSandbox) -> None:
    out = outbound(runtime, slack)
    posted = await out.post_message(thread(), "## Plan\n- **ship** it", idempotency_key="k-md")
    await out.edit_message(thread(), posted.message_id, "See [the doc](https://example.com/a?b=1&c=2)")
    [shown] = slack.thread(CHANNEL, thread().thread_key)
    assert slack.calls_to("chat.postMessage")[0].args["text"] == "*Plan*\n• *ship* it"
    assert shown.text == "See <https://example.com/a?b=1&amp;c=2|the doc>"


async def test_show_working_sets_the_assistant_status_and_never_raises(runtime: Runtime, slack: SlackSandbox) -> None:
    out = outbound(runtime, slack)
    await out.show_working(thread(channel=DM), "is thinking…")
    slack.fail(Failure("assistant.threads.setStatus", error="channel_not_found"))
    await out.show_working(thread(), "is thinking…")
    calls = slack.calls_to("assistant.threads.setStatus")
    assert [c.args["status"] for c in calls] == ["is thinking…", "is thinking…"]


async def test_an_upload_lands_in_the_thread_with_its_comment(runtime: Runtime, slack: SlackSandbox) -> None:
    slack.share_delay_s = 0.3  # Slack shares after its file scan: the share's ts is waited for
    transcript = b"hello world\n" * 200_000  # 2.4 MB: sent as a stream, not one blocking write
    posted = await outbound(runtime, slack).upload_file(
        thread(),
        FileUpload(
            filename="transcript.txt",
            content=transcript,
            title="Transcript",
            comment="Here is the **full** transcript.",
        ),
        idempotency_key="k-file",
    )
    [file] = slack.files.values()
    assert file.content == transcript
    assert (file.channel, file.thread_ts, file.title) == (CHANNEL, thread().thread_key, "Transcript")
    [shared] = slack.thread(CHANNEL, thread().thread_key)
    assert (shared.ts, posted.existed) == (posted.message_id, False)
    assert shared.text == "Here is the *full* transcript."
    assert shared.files == [file.file_id]
    assert shared.blocks[0]["block_id"] == upload_marker("k-file"), "the key rides along, unseen"
    complete = slack.calls_to("files.completeUploadExternal")[0].args
    assert "initial_comment" not in complete, "Slack would ignore the blocks next to an initial comment"
    assert len(slack.calls_to("files.info")) >= 2, "asked again until the share was listed"


async def test_the_same_key_twice_uploads_one_file(runtime: Runtime, slack: SlackSandbox) -> None:
    first = await outbound(runtime, slack).upload_file(
        thread(), FileUpload(filename="t.txt", content=b"once", title="T", comment="Here."), idempotency_key="k-twice"
    )
    await runtime.redis.flushdb()
    again = await outbound(runtime, slack).upload_file(
        thread(), FileUpload(filename="t.txt", content=b"once", title="T", comment="Here."), idempotency_key="k-twice"
    )
    assert (again.message_id, again.existed) == (first.message_id, True)
    assert len(slack.files) == 1
    assert len(slack.thread(CHANNEL, thread().thread_key)) == 1
    assert len(slack.calls_to("files.getUploadURLExternal")) == 1


@pytest.mark.parametrize(
    ("comment", "note_lost"),
    [("Here.", False), ("Here.", True), ("", False)],
    ids=["by-file-id", "by-marker-when-the-note-is-gone", "no-comment-by-file-id"],
)
async def test_an_upload_whose_answer_was_lost_is_found_when_recovering(
    comment: str, note_lost: bool, runtime: Runtime, slack: SlackSandbox
) -> None:
    """Slack shared the file, then answered 500: the call is not repeated, and the step's retry (recovering) finds
    the share by the file id the outbox noted before completing, or by the comment's marker when even that note is
    gone. Redis plays no part: it is flushed in between."""
    slack.fail(Failure("files.completeUploadExternal", error="internal_error", status=500, after_acting=True))
    upload = FileUpload(filename="t.txt", content=b"abc", title="T", comment=comment)
    with pytest.raises(TransientUpstreamError):
        await outbound(runtime, slack).upload_file(thread(), upload, idempotency_key="k-lost")
    assert len(slack.calls_to("files.completeUploadExternal")) == 1, "not retried inside the call"
    await runtime.redis.flushdb()
    if note_lost:
        await forget_sent(runtime, "k-lost", note=True)
    again = await outbound(runtime, slack).upload_file(thread(), upload, idempotency_key="k-lost")
    [shared] = slack.thread(CHANNEL, thread().thread_key)
    assert (again.message_id, again.existed) == (shared.ts, True)
    assert len(slack.files) == 1
    assert len(slack.calls_to("files.completeUploadExternal")) == 1
    assert bool(slack.calls_to("conversations.replies")) == note_lost


async def test_an_upload_that_never_completed_is_made_when_recovering(runtime: Runtime, slack: SlackSandbox) -> None:
    slack.fail(Failure("files.completeUploadExternal", error="internal_error", status=500))
    upload = FileUpload(filename="t.txt", content=b"abc", title="T", comment="Here.")
    with pytest.raises(TransientUpstreamError):
        await outbound(runtime, slack).upload_file(thread(), upload, idempotency_key="k-x")
    again = await outbound(runtime, slack).upload_file(thread(), upload, idempotency_key="k-x")
    [shared] = slack.thread(CHANNEL, thread().thread_key)
    assert (again.message_id, again.existed) == (shared.ts, False)
    assert [slack.files[f].content for f in shared.files] == [b"abc"]


async def test_native_stream_retried_after_a_crash_and_a_redis_flush_edits_instead_of_posting_again(
    runtime: Runtime, slack: SlackSandbox
) -> None:
    dm = thread(channel=DM)
    first = outbound(runtime, slack).open_reply(dm, "reply:7")
    assert first is not None
    await first.feed("Half an ans")  # the first attempt dies here, mid-stream
    await runtime.redis.flushdb()
    retry = outbound(runtime, slack).open_reply(dm, "reply:7")
    assert retry is not None
    await retry.feed("A whole answer.")
    ids = await retry.finish()
    assert [m.text for m in slack.thread(DM, dm.thread_key)] == ["A whole answer."]
    assert ids == [slack.thread(DM, dm.thread_key)[0].ts]
    assert len(slack.calls_to("chat.startStream")) == 1


async def test_channel_threads_fall_back_to_post_and_edit(runtime: Runtime, slack: SlackSandbox) -> None:
    out = outbound(runtime, slack)
    assert out.open_reply(thread(), "reply:8") is None
    assert out.open_reply(thread(channel=DM), "reply:8") is not None
    switched_off = outbound(runtime, slack, bare(slack, native_streaming=False))
    assert switched_off.open_reply(thread(channel=DM), "reply:8") is None
    assert bare(slack).open_reply(thread(channel=DM), "reply:8") is None, "no record to keep its parts in"


async def test_an_edit_refused_as_too_long_continues_in_a_follow_up(runtime: Runtime, slack: SlackSandbox) -> None:
    posted = await outbound(runtime, slack).post_message(thread(), "short", idempotency_key="k-grow")
    text = long_text(3000)
    for _ in range(2):  # the second edit (a retried step) must not post the follow-up again
        slack.fail(Failure("chat.update", error="msg_too_long"))
        await outbound(runtime, slack).edit_message(thread(), posted.message_id, text)
    shown = slack.thread(CHANNEL, thread().thread_key)
    assert len(shown) == 2
    assert shown[0].ts == posted.message_id
    assert "".join(m.text for m in shown) == text


async def test_where_chat_streaming_is_refused_the_reply_is_posted_and_later_replies_post_and_edit(
    runtime: Runtime, slack: SlackSandbox
) -> None:
    slack_platform = bare(slack)
    out = outbound(runtime, slack, slack_platform)
    dm = thread(channel=DM)
    slack.fail(Failure("chat.startStream", error="not_allowed_token_type"))
    sink = out.open_reply(dm, "reply:9")
    assert sink is not None
    await sink.feed("Hello ")
    await sink.feed("there.")
    ids = await sink.finish()
    assert [m.text for m in slack.thread(DM, dm.thread_key)] == ["Hello there."]
    assert ids == [slack.thread(DM, dm.thread_key)[0].ts]
    assert outbound(runtime, slack, slack_platform).open_reply(dm, "reply:10") is None, "next: post + edit"


async def test_a_post_whose_answer_was_lost_is_not_repeated_blindly(runtime: Runtime, slack: SlackSandbox) -> None:
    """Slack posted, then answered 500: a retry inside the call could post twice, so the error goes up instead
    and the next attempt (recovering) finds the message by its metadata."""
    slack.fail(Failure("chat.postMessage", error="internal_error", status=500, after_acting=True))
    with pytest.raises(TransientUpstreamError):
        await outbound(runtime, slack).post_message(thread(), "only once", idempotency_key="k-lost")
    assert len(slack.calls_to("chat.postMessage")) == 1, "not retried inside the call"
    again = await outbound(runtime, slack).post_message(thread(), "only once", idempotency_key="k-lost")
    assert again.existed
    assert [m.text for m in slack.messages] == ["only once"]
