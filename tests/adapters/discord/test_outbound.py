"""Posting from workers over REST into the sandbox Discord: long answers split with code intact, 429s waited out,
replayed sends not duplicated, refusals turned into errors a user can read."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from adapters.discord.outbound import MAX_UPLOAD_BYTES, DiscordOutbound
from adapters.discord.rest import DiscordRest
from adapters.discord.splitting import fence_state, join_messages
from bot.config import Settings
from bot.errors import InvalidInput, PermanentUpstreamError, TransientUpstreamError
from bot.events import PostedMessage, ThreadRef
from bot.ports import FileUpload
from bot.runtime import Runtime
from bot.streaming import open_reply
from sandbox.discord_server import Fault
from sandbox.openai_server import StandInLLM, Step, long_text
from tests.adapters.discord.conftest import World, answered
from tests.conftest import rate_limited, wait_for

CODE = "```python\n" + "\n".join(f"print('step {i} of the worked example')" for i in range(88)) + "\n```\n"
# About 5,000 characters with a code block across the first cut.
LONG_ANSWER = long_text(800) + "\n\n" + CODE + long_text(800)


def where(channel: str, guild: str) -> ThreadRef:
    return ThreadRef("discord", guild, channel, channel)


@pytest.fixture
async def rest(settings: Settings) -> AsyncIterator[DiscordRest]:
    async with DiscordRest(settings, max_attempts=3, max_wait_s=5.0) as client:
        yield client


# The stand-in stops at max_tokens (about 4 characters each), like a real model.
@pytest.mark.parametrize("discord_overrides", [{"max_reply_tokens": 4000}], indirect=True)
async def test_a_5000_character_answer_arrives_complete_with_its_code_block_intact(
    world: World, gateway: object, worker: asyncio.Task[None], stand_in: StandInLLM, runtime: Runtime
) -> None:
    assert 4900 < len(LONG_ANSWER) < 5200
    stand_in.script(Step(reply=LONG_ANSWER))
    asked = await world.fake.user_message(world.general, "Write it all out.", author=world.ada, mention_bot=True)
    await wait_for(lambda: answered(runtime, 1))
    texts = world.fake.bot_texts(asked["id"])
    assert join_messages(texts) == LONG_ANSWER
    assert len(texts) == 3
    assert all(len(t) <= 2000 for t in texts)
    assert all(fence_state(t) is None for t in texts), "every message closes the code fences it opens"
    assert texts[0].endswith("\n```"), "the first message closes the block it was cut in"
    assert texts[1].startswith("```python\n"), "the next one reopens it with its language"


async def test_a_429_is_waited_out_and_the_reply_lands_once(
    world: World, gateway: object, worker: asyncio.Task[None], stand_in: StandInLLM
) -> None:
    stand_in.script(Step(reply="Worth the wait."))
    world.fake.fail(Fault(r"POST /channels/\d+/messages", retry_after=0.6))
    limited = rate_limited("discord")
    asked = await world.fake.user_message(world.general, "hello", author=world.ada, mention_bot=True)
    await wait_for(lambda: world.fake.bot_texts(asked["id"]) == ["Worth the wait."])
    assert rate_limited("discord") == limited + 1, "counted for /metrics"
    sends = world.fake.calls_to("POST", rf"/channels/{asked['id']}/messages")
    assert [c.status for c in sends] == [429, 200]
    assert sends[1].at - sends[0].at >= 0.6


async def test_a_global_429_holds_back_every_route(world: World, rest: DiscordRest) -> None:
    outbound = DiscordOutbound(rest)
    posted = await outbound.post_message(where(world.general, world.guild), "one", idempotency_key="k1")
    world.fake.fail(Fault(r"PATCH .*", retry_after=0.5, global_=True))
    edit = asyncio.create_task(outbound.edit_message(where(world.general, world.guild), posted.message_id, "one!"))
    await wait_for(lambda: world.fake.calls_to("PATCH", r".*"))
    await outbound.post_message(where(world.general, world.guild), "two", idempotency_key="k2")
    await edit
    limited = world.fake.calls_to("PATCH", r".*")[0]
    second_post = world.fake.calls_to("POST", r"/channels/\d+/messages")[-1]
    assert second_post.at - limited.at >= 0.5, "a global limit stops other routes too"
    assert world.fake.texts(world.general) == ["one!", "two"]


async def test_an_empty_bucket_is_waited_for_before_sending_instead_of_after_a_429(
    world: World, rest: DiscordRest
) -> None:
    world.fake.exhaust_bucket(r"POST /channels/\d+/messages", reset_after=0.5)
    outbound = DiscordOutbound(rest)
    await outbound.post_message(where(world.general, world.guild), "one", idempotency_key="b1")
    await outbound.post_message(where(world.general, world.guild), "two", idempotency_key="b2")
    first, second = world.fake.calls_to("POST", r"/channels/\d+/messages")
    assert (first.status, second.status) == (200, 200)
    assert second.at - first.at >= 0.45


async def test_rate_limits_that_do_not_end_become_a_transient_error(world: World, rest: DiscordRest) -> None:
    world.fake.fail(Fault(r"POST .*", retry_after=0.05, times=3))
    with pytest.raises(TransientUpstreamError) as caught:
        await DiscordOutbound(rest).post_message(where(world.general, world.guild), "x", idempotency_key="k")
    assert caught.value.retry_after_s == pytest.approx(0.05)
    assert len(world.fake.calls_to("POST", r".*")) == 3
    world.fake.fail(Fault(r"POST .*", retry_after=600))
    with pytest.raises(TransientUpstreamError) as long_wait:
        await DiscordOutbound(rest).post_message(where(world.general, world.guild), "x", idempotency_key="k")
    assert long_wait.value.retry_after_s == 600, "a long wait goes back to the job's retry instead of blocking"


async def test_a_replayed_send_is_not_duplicated(world: World, rest: DiscordRest) -> None:
    outbound = DiscordOutbound(rest)
    thread = where(world.general, world.guild)
    first = await outbound.post_message(thread, "The answer is", idempotency_key="reply:7:0")
    again = await outbound.post_message(thread, "The answer is 42.", idempotency_key="reply:7:0", recovering=True)
    assert again.message_id == first.message_id
    assert not first.existed
    assert again.existed
    assert world.fake.texts(world.general) == ["The answer is"]
    sent = world.fake.calls_to("POST", r"/channels/\d+/messages")
    assert all(c.body["enforce_nonce"] is True for c in sent)
    assert sent[0].body["nonce"] == sent[1].body["nonce"]
    assert len(sent[0].body["nonce"]) <= 25


async def test_a_retried_stream_edits_what_the_crashed_attempt_posted(world: World, rest: DiscordRest) -> None:
    outbound = DiscordOutbound(rest)
    thread = where(world.general, world.guild)
    crashed = open_reply(outbound, thread, "reply:9")
    await crashed.feed("Half an ans")  # posted, then the worker died
    retry = open_reply(outbound, thread, "reply:9")
    await retry.feed("A whole answer.")
    await retry.finish()
    assert world.fake.texts(world.general) == ["A whole answer."]


async def test_missing_permission_to_send_is_a_permanent_error_with_a_clear_message(
    world: World, rest: DiscordRest
) -> None:
    world.fake.forbid(world.general, "send")
    with pytest.raises(PermanentUpstreamError) as caught:
        await DiscordOutbound(rest).post_message(where(world.general, world.guild), "hi", idempotency_key="k")
    assert caught.value.user_message.startswith("I'm not allowed to send messages here (Discord says: Missing")
    assert len(world.fake.calls_to("POST", r".*")) == 1, "a refusal is not retried"


async def test_typing_is_shown_and_its_failure_is_harmless(world: World, rest: DiscordRest) -> None:
    outbound = DiscordOutbound(rest)
    await outbound.show_working(where(world.general, world.guild), "thinking")
    await outbound.show_working(where("404", world.guild), "thinking")  # unknown channel: logged, not raised
    assert [c.status for c in world.fake.calls_to("POST", r"/channels/\w+/typing")] == [204, 404]


async def test_slow_edits_keep_to_about_one_a_second(world: World, rest: DiscordRest) -> None:
    stream = open_reply(DiscordOutbound(rest), where(world.general, world.guild), "reply:3")
    started = time.monotonic()
    while time.monotonic() - started < 2.2:
        await stream.feed("word ")
        await asyncio.sleep(0.02)
    await stream.finish()
    assert 1 <= len(world.fake.calls_to("PATCH", r".*")) <= 3


async def test_a_thread_the_bot_may_not_post_in_is_logged_and_the_worker_keeps_serving(
    world: World,
    gateway: object,
    worker: asyncio.Task[None],
    stand_in: StandInLLM,
    runtime: Runtime,
    capsys: pytest.CaptureFixture[str],
) -> None:
    other = world.fake.add_channel(world.guild, "other")
    world.fake.forbid(world.general, "send")  # the bot may open threads here but not post in them
    refused = await world.fake.user_message(world.general, "hello?", author=world.ada, mention_bot=True)
    # The reply and then the error notice are both refused.
    await wait_for(lambda: len(world.fake.calls_to("POST", rf"/channels/{refused['id']}/messages")) >= 2)
    stand_in.script(Step(reply="Answered elsewhere."))
    asked = await world.fake.user_message(other, "and here?", author=world.ada, mention_bot=True)
    await wait_for(lambda: world.fake.bot_texts(asked["id"]) == ["Answered elsewhere."])
    refused_posts = [c.status for c in world.fake.calls_to("POST", rf"/channels/{refused['id']}/messages")]
    assert refused_posts == [403, 403], "the reply and the notice, each refused once: a refusal is not retried"
    await wait_for(lambda: _first_message_status(runtime, "failed"))
    logged = capsys.readouterr()  # stdout or stderr, depending on how an earlier test configured logging
    assert "discord refused for lack of a permission" in logged.out + logged.err


async def _first_message_status(rt: Runtime, status: str) -> bool:
    from sqlalchemy import select

    from bot.models import MESSAGES

    async with rt.autocommit.connect() as conn:
        first = (await conn.execute(select(MESSAGES.c.status).order_by(MESSAGES.c.id).limit(1))).scalar_one()
    return bool(first == status)


async def test_an_upload_lands_in_the_thread_with_its_comment(world: World, rest: DiscordRest) -> None:
    thread = where(world.general, world.guild)
    posted = await DiscordOutbound(rest).upload_file(
        thread,
        FileUpload(
            filename="transcript.txt",
            content=b"hello\r\nworld\x00",
            title="Transcript",
            comment="Here is the transcript.",
        ),
        idempotency_key="media:1:file",
    )
    [message] = world.fake.messages[world.general]
    assert (message.payload["id"], posted.existed) == (posted.message_id, False)
    assert message.payload["content"] == "Here is the transcript."
    [attachment] = message.payload["attachments"]
    assert (attachment["filename"], attachment["title"], attachment["size"]) == ("transcript.txt", "Transcript", 13)
    assert attachment["url"].startswith(world.fake.origin + "/attachments/")
    async with aiohttp.ClientSession() as http, http.get(attachment["url"]) as download:
        assert await download.read() == b"hello\r\nworld\x00"
    [send] = world.fake.calls_to("POST", r"/channels/\d+/messages")
    assert send.files == {"files[0]": ("transcript.txt", 13)}
    assert (send.body["enforce_nonce"], send.body["attachments"]) == (
        True, [{"id": 0, "filename": "transcript.txt", "title": "Transcript"}],
    )  # fmt: skip


async def test_the_same_key_twice_uploads_one_file(world: World, rest: DiscordRest) -> None:
    outbound, thread = DiscordOutbound(rest), where(world.general, world.guild)

    async def upload(comment: str, recovering: bool = False) -> PostedMessage:
        file = FileUpload(filename="t.txt", content=b"abc", title="T", comment=comment)
        return await outbound.upload_file(thread, file, idempotency_key="media:2:file", recovering=recovering)

    first = await upload(comment="Here.")
    same = await upload(comment="Here.")
    # A replay is told apart by what Discord returns: here the comment a retried step would have changed.
    changed = await upload(comment="Here, again.", recovering=True)
    assert same.message_id == changed.message_id == first.message_id
    assert changed.existed
    assert world.fake.texts(world.general) == ["Here."]
    assert len(world.fake.files) == 1


async def test_an_upload_whose_answer_was_lost_is_sent_again_and_lands_once(world: World, rest: DiscordRest) -> None:
    """Discord stored the message, then answered 500: the retried send carries the same nonce and gets it back."""
    world.fake.fail(Fault(r"POST /channels/\d+/messages", status=500, after_acting=True))
    posted = await DiscordOutbound(rest).upload_file(
        where(world.general, world.guild),
        FileUpload(filename="t.txt", content=b"abc", title="T", comment="Here."),
        idempotency_key="media:3:file",
    )
    assert [c.status for c in world.fake.calls_to("POST", r"/channels/\d+/messages")] == [500, 200]
    [message] = world.fake.messages[world.general]
    assert message.payload["id"] == posted.message_id
    assert len(message.payload["attachments"]) == 1


async def test_a_file_over_discords_limit_is_refused_before_sending(world: World, rest: DiscordRest) -> None:
    big = bytes(MAX_UPLOAD_BYTES + 1)
    with pytest.raises(InvalidInput) as caught:
        await DiscordOutbound(rest).upload_file(
            where(world.general, world.guild),
            FileUpload(filename="transcript.txt", content=big, title=""),
            idempotency_key="k",
        )
    assert caught.value.user_message == (
        "`transcript.txt` is 10,485,761 bytes; a bot may attach at most 10,485,760 bytes (10 MiB) to a Discord "
        "message here."
    )
    assert world.fake.calls_to("POST", r".*") == []
    # Discord itself refuses it too (413), should the limit we assume be set higher than the server's.
    with pytest.raises(PermanentUpstreamError, match="HTTP 413 code 40005"):
        await DiscordOutbound(rest, max_upload_bytes=2 * MAX_UPLOAD_BYTES).upload_file(
            where(world.general, world.guild),
            FileUpload(filename="transcript.txt", content=big, title=""),
            idempotency_key="k",
        )
    assert world.fake.messages[world.general] == []


async def test_missing_permission_to_attach_files_is_a_clear_permanent_error(world: World, rest: DiscordRest) -> None:
    world.fake.forbid(world.general, "attach")
    with pytest.raises(PermanentUpstreamError) as caught:
        await DiscordOutbound(rest).upload_file(
            where(world.general, world.guild),
            FileUpload(filename="t.txt", content=b"abc", title=""),
            idempotency_key="k",
        )
    assert caught.value.user_message.startswith("I'm not allowed to attach files here")
