"""Slack events through real signed HTTP requests into the adapter, the real worker, the stand-in LLM and the
sandbox Slack server: what a user in Slack would see."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import text

from bot.runtime import Runtime
from sandbox.openai_server import StandInLLM, Step
from sandbox.slack_server import SlackSandbox
from tests.adapters.slack.conftest import (
    BOT_ID,
    BOT_USER_ID,
    CHANNEL,
    DM,
    USER,
    SlackEvents,
    mention,
    message,
    new_ts,
    stored_messages,
)
from tests.conftest import wait_for


async def test_mention_in_a_channel_gets_one_threaded_streamed_reply(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM, slack: SlackSandbox, slack_http: SlackEvents
) -> None:
    stand_in.script(Step(reply="Paris is the capital of France, and has been for a long time."))
    stand_in.token_delay = 0.03  # a model that writes as it goes (a fast one's reply is posted whole)
    event = mention("What is the capital of France?")
    response = await slack_http.event(event)
    assert response.status_code == 200

    await wait_for(lambda: [m for m in slack.thread(CHANNEL, event["ts"]) if "long time" in m.text])
    replies = slack.thread(CHANNEL, event["ts"])
    assert [m.text for m in replies] == ["Paris is the capital of France, and has been for a long time."]
    posts = slack.calls_to("chat.postMessage")
    assert len(posts) == 1
    assert posts[0].args["thread_ts"] == event["ts"]
    assert posts[0].args["metadata"]["event_type"] == "threadbot_post"
    assert posts[0].args["metadata"]["event_payload"]["key"], "the idempotency key travels with the message"
    assert slack.calls_to("chat.update"), "the reply was streamed: posted early, then edited to the full text"
    prompt = stand_in.chat_requests()[-1]["messages"]
    assert prompt[-1] == {"role": "user", "content": "What is the capital of France?"}
    await wait_for(lambda: _statuses(runtime, ["completed", "completed"]))
    rows = await stored_messages(runtime)
    assert [r.role for r in rows] == ["user", "assistant"]
    assert rows[1].platform_message_id == replies[0].ts


async def test_an_event_delivered_four_times_gets_one_reply(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM, slack: SlackSandbox, slack_http: SlackEvents
) -> None:
    stand_in.script(Step(reply="Only once."))
    event = mention("Answer me once")
    # Slack's pattern when an ack is late: the original, then retries 1-3 with the same event_id; the same
    # message also arrives as a `message` event with its own event_id.
    for retry in (None, 1, 2, 3):
        response = await slack_http.event(event, event_id="Ev0RETRIED", retry=retry)
        assert response.status_code == 200
    await slack_http.event({**event, "type": "message", "channel_type": "channel"})

    await wait_for(lambda: [m for m in slack.thread(CHANNEL, event["ts"]) if m.text == "Only once."])
    await asyncio.sleep(0.5)  # room for a wrongly queued second turn to show up
    assert [m.text for m in slack.thread(CHANNEL, event["ts"])] == ["Only once."]
    assert len(stand_in.chat_requests()) == 1
    assert [r.role for r in await stored_messages(runtime)] == ["user", "assistant"]


async def test_bad_or_stale_signature_is_refused_and_nothing_is_written(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM, slack: SlackSandbox, slack_http: SlackEvents
) -> None:
    forged = await slack_http.event(mention("forged"), secret="not-the-secret")
    stale = await slack_http.event(mention("replayed"), age_s=10 * 60)
    assert (forged.status_code, stale.status_code) == (401, 401)
    await asyncio.sleep(0.3)
    assert await stored_messages(runtime) == []
    assert slack.calls_to("chat.postMessage") == []
    assert stand_in.chat_requests() == []


async def test_a_dm_is_answered_in_its_thread_by_native_streaming(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM, slack: SlackSandbox, slack_http: SlackEvents
) -> None:
    stand_in.script(Step(reply="Hello **Ada**, streamed natively."))
    event = message("hi there", channel=DM, channel_type="im")
    await slack_http.event(event)
    await wait_for(lambda: [m for m in slack.thread(DM, event["ts"]) if not m.streaming])
    [reply] = slack.thread(DM, event["ts"])
    assert reply.text == "Hello **Ada**, streamed natively."  # markdown: Slack renders streamed markdown itself
    assert reply.metadata is not None
    assert reply.metadata["event_payload"]["key"], "the idempotency key travels with the message"
    assert len(slack.calls_to("chat.startStream")) == 1
    assert len(slack.calls_to("chat.stopStream")) == 1
    assert slack.calls_to("chat.postMessage") == []


async def test_a_thread_reply_without_mention_is_answered_only_where_the_bot_takes_part(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM, slack: SlackSandbox, slack_http: SlackEvents
) -> None:
    stand_in.script(Step(reply="First answer."), Step(reply="Second answer."))
    start = mention("Remember the word pineapple.")
    await slack_http.event(start)
    await wait_for(lambda: [m for m in slack.thread(CHANNEL, start["ts"]) if m.text == "First answer."])

    elsewhere = message("chatting in someone else's thread", thread_ts=new_ts())
    follow_up = message("Which word was it?", thread_ts=start["ts"])
    await slack_http.event(elsewhere)
    await slack_http.event(follow_up)
    await wait_for(lambda: [m for m in slack.thread(CHANNEL, start["ts"]) if m.text == "Second answer."])
    assert [m.text for m in slack.thread(CHANNEL, start["ts"])] == ["First answer.", "Second answer."]
    prompt = stand_in.chat_requests()[-1]["messages"]
    assert [m["content"] for m in prompt[1:]] == ["Remember the word pineapple.", "First answer.", "Which word was it?"]
    assert slack.thread(CHANNEL, elsewhere["thread_ts"]) == []
    assert "chatting in someone else's thread" not in [r.text for r in await stored_messages(runtime)]


async def test_own_and_other_bots_messages_are_ignored(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM, slack: SlackSandbox, slack_http: SlackEvents
) -> None:
    await slack_http.event(message("I am the bot", channel=DM, channel_type="im", user=BOT_USER_ID, bot_id=BOT_ID))
    await slack_http.event(message("beep", channel=DM, channel_type="im", user="U0OTHERBOT", bot_id="B0OTHER"))
    await asyncio.sleep(0.5)
    assert await stored_messages(runtime) == []
    assert stand_in.chat_requests() == []


@pytest.mark.slack_settings(slack_allow_bot_messages=True)
async def test_other_bots_are_answered_when_configured_but_never_the_bot_itself(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM, slack: SlackSandbox, slack_http: SlackEvents
) -> None:
    stand_in.script(Step(reply="Hello, fellow bot."))
    await slack_http.event(message("I am the bot", channel=DM, channel_type="im", user=BOT_USER_ID, bot_id=BOT_ID))
    beep = message("beep", channel=DM, channel_type="im", user="U0OTHERBOT", bot_id="B0OTHER")
    await slack_http.event(beep)
    await wait_for(
        lambda: [m for m in slack.thread(DM, beep["ts"]) if m.text == "Hello, fellow bot." and not m.streaming]
    )
    assert [r.text for r in await stored_messages(runtime) if r.role == "user"] == ["beep"]


async def test_a_refused_message_is_explained_to_its_sender_only(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM, slack: SlackSandbox, slack_http: SlackEvents
) -> None:
    too_long = "x" * (runtime.settings.max_message_chars + 1)
    event = mention(too_long)
    await slack_http.event(event)
    await wait_for(lambda: slack.calls_to("chat.postEphemeral"))
    [told] = slack.calls_to("chat.postEphemeral")
    assert told.args["user"] == USER
    assert told.args["thread_ts"] == event["ts"]
    assert "the limit is 8,000" in told.args["text"]
    assert await stored_messages(runtime) == []


async def test_edits_and_deletions_update_the_stored_copy(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM, slack: SlackSandbox, slack_http: SlackEvents
) -> None:
    first = mention("My favourite colour is blue.")
    await slack_http.event(first)
    await wait_for(lambda: slack.thread(CHANNEL, first["ts"]) and len(stand_in.chat_requests()) == 1)
    await wait_for(lambda: _statuses(runtime, ["completed", "completed"]))
    second = message("and my pet is a cat", thread_ts=first["ts"])
    await slack_http.event(second)
    await wait_for(lambda: _statuses(runtime, ["completed", "completed", "completed", "completed"]))

    edited = {**first, "text": f"<@{BOT_USER_ID}> My favourite colour is green &amp; gold."}
    await slack_http.event(
        message("", subtype="message_changed", message=edited, previous_message=first, user="", hidden=True)
    )
    await slack_http.event(message("", subtype="message_deleted", deleted_ts=second["ts"], user="", hidden=True))
    await wait_for(lambda: _user_texts(runtime, ["My favourite colour is green & gold."]))
    await slack_http.event(message("What do you know about me?", thread_ts=first["ts"]))
    await wait_for(lambda: len(stand_in.chat_requests()) == 3)
    prompt = [m["content"] for m in stand_in.chat_requests()[-1]["messages"] if m["role"] == "user"]
    assert prompt == ["My favourite colour is green & gold.", "What do you know about me?"]


async def _statuses(rt: Runtime, wanted: list[str]) -> bool:
    return [r.status for r in await stored_messages(rt)] == wanted


async def _user_texts(rt: Runtime, wanted: list[str]) -> bool:
    return [r.text for r in await stored_messages(rt) if r.role == "user"] == wanted


async def test_assistant_pane_greets_once_with_suggested_prompts(
    runtime: Runtime, slack: SlackSandbox, slack_http: SlackEvents
) -> None:
    started = {
        "type": "assistant_thread_started",
        "assistant_thread": {"user_id": USER, "context": {}, "channel_id": DM, "thread_ts": "1690000999.000100"},
        "event_ts": new_ts(),
    }
    await slack_http.event(started, event_id="Ev0PANE")
    await slack_http.event(started, event_id="Ev0PANE", retry=1)
    await wait_for(lambda: slack.calls_to("assistant.threads.setSuggestedPrompts"))
    await asyncio.sleep(0.3)
    assert [m.text for m in slack.thread(DM, "1690000999.000100")] == [runtime.settings.slack_greeting]
    [prompts] = slack.calls_to("assistant.threads.setSuggestedPrompts")
    assert [p["title"] for p in prompts.args["prompts"]] == ["Summarise", "Explain", "Draft a reply"]


async def test_url_verification_is_answered_with_the_challenge(runtime: Runtime, slack_http: SlackEvents) -> None:
    body = json.dumps({"token": "legacy", "challenge": "3eZbrw1aB", "type": "url_verification"}).encode()
    response = await slack_http.post(body, "application/json")
    assert response.status_code == 200
    assert response.json() == {"challenge": "3eZbrw1aB"}
    unsigned = await slack_http.post(body, "application/json", secret="wrong")
    assert unsigned.status_code == 401


@asynccontextmanager
async def messages_refused(runtime: Runtime) -> AsyncIterator[None]:
    """Postgres itself refuses new messages (a trigger raising, as a full disk or a failover would)."""
    async with runtime.autocommit.connect() as conn:
        await conn.execute(
            text(
                "CREATE FUNCTION refuse_messages() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on device'; END $$"
            )
        )
        await conn.execute(
            text("CREATE TRIGGER refuse BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION refuse_messages()")
        )
    try:
        yield
    finally:
        async with runtime.autocommit.connect() as conn:
            await conn.execute(text("DROP TRIGGER refuse ON messages"))
            await conn.execute(text("DROP FUNCTION refuse_messages()"))


async def test_an_event_that_cannot_be_stored_is_left_unacked_and_its_redelivery_is_answered(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM, slack: SlackSandbox, slack_http: SlackEvents
) -> None:
    """Postgres refuses the message: Slack gets a 500, not an ack, so it delivers the event again (acked first, the
    message would be lost). The redelivery is stored and answered once, and nobody is told of a failure."""
    stand_in.script(Step(reply="Got it after all."))
    event = mention("Are you there?")
    async with messages_refused(runtime):
        refused = await slack_http.event(event, event_id="Ev0FULL")
    assert refused.status_code == 500
    assert await stored_messages(runtime) == []

    again = await slack_http.event(event, event_id="Ev0FULL", retry=1)
    assert again.status_code == 200
    await wait_for(lambda: [m for m in slack.thread(CHANNEL, event["ts"]) if m.text == "Got it after all."])
    assert len(stand_in.chat_requests()) == 1
    assert slack.calls_to("chat.postEphemeral") == []


async def test_on_slacks_last_delivery_a_failure_is_acked_and_told_to_the_sender(
    runtime: Runtime, stand_in: StandInLLM, slack: SlackSandbox, slack_http: SlackEvents
) -> None:
    event = mention("Anyone?")
    async with messages_refused(runtime):
        last = await slack_http.event(event, event_id="Ev0LAST", retry=3)
    assert last.status_code == 200
    await wait_for(lambda: slack.calls_to("chat.postEphemeral"))
    [told] = slack.calls_to("chat.postEphemeral")
    assert told.args["user"] == USER
    assert told.args["thread_ts"] == event["ts"]
    assert "couldn't take that just now" in told.args["text"]
    assert await stored_messages(runtime) == []
