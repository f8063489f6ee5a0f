"""Slash commands over signed HTTP: an ephemeral receipt in the ack, results in a thread the adapter opens."""

from __future__ import annotations

import asyncio

from bot.catalog import COMMANDS
from bot.events import SlashCommand, ThreadRef
from bot.runtime import Runtime
from sandbox.openai_server import StandInLLM, Step
from sandbox.slack_server import BOT_USER_ID, TEAM_ID, SlackSandbox
from tests.adapters.slack.conftest import CHANNEL, USER, SlackEvents, stored_messages
from tests.conftest import wait_for


async def test_ask_acks_with_a_receipt_and_answers_in_a_new_thread(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM, slack: SlackSandbox, slack_http: SlackEvents
) -> None:
    stand_in.script(Step(reply="Forty-two."))
    response = await slack_http.command("/ask", "What is the answer?", slack.response_url("ask"))
    assert response.status_code == 200
    assert response.json() == {"text": "On it: I'll answer in a thread in this channel.", "response_type": "ephemeral"}

    await wait_for(lambda: [m for m in slack.messages if m.text == "Forty-two."])
    anchor = next(m for m in slack.messages if m.thread_ts is None)
    assert anchor.channel == CHANNEL
    assert anchor.text == f"<@{USER}> asked: What is the answer?"
    assert [m.text for m in slack.thread(CHANNEL, anchor.ts)] == ["Forty-two."]
    assert stand_in.chat_requests()[-1]["messages"][-1]["content"] == "What is the answer?"
    assert slack.responses == []


async def test_ask_without_text_shows_its_usage(runtime: Runtime, slack: SlackSandbox, slack_http: SlackEvents) -> None:
    response = await slack_http.command("/ask", "  ", slack.response_url("empty"))
    assert response.json()["text"].startswith("Ask me anything")
    await asyncio.sleep(0.2)
    assert slack.messages == []
    assert await stored_messages(runtime) == []


async def test_refused_ask_is_told_ephemerally_and_leaves_no_anchor(
    runtime: Runtime, slack: SlackSandbox, slack_http: SlackEvents
) -> None:
    await runtime.redis.flushdb()
    response = await slack_http.command("/ask", "x" * 9000, slack.response_url("refused"))
    assert response.status_code == 200
    await wait_for(lambda: slack.responses)
    assert slack.responses[0]["response_type"] == "ephemeral"
    assert "the limit is 8,000" in slack.responses[0]["text"]
    await wait_for(lambda: slack.calls_to("chat.delete"))
    assert slack.messages == [], "the anchor of a refused question is taken back"


async def test_chain_list_is_answered_in_the_ack_with_the_shipped_chains(
    runtime: Runtime, slack: SlackSandbox, slack_http: SlackEvents
) -> None:
    response = await slack_http.command("/chain", "list", slack.response_url("chain"))
    assert response.status_code == 200
    body = response.json()
    assert body["response_type"] == "ephemeral"
    for name in ("media-digest", "thread-summary", "followup-email", "clarify-then-answer"):
        assert name in body["text"]
    assert slack.messages == []


async def test_transcribe_without_a_file_says_how_to_share_one(
    runtime: Runtime, slack: SlackSandbox, slack_http: SlackEvents
) -> None:
    response = await slack_http.command("/transcribe", "", slack.response_url("transcribe"))
    assert response.status_code == 200
    assert response.json() == {
        "text": "There is no file here to transcribe. Share an audio or video file with me (mention me in the "
        "message) and I'll transcribe and digest it.",
        "response_type": "ephemeral",
    }
    assert slack.messages == []


async def test_remind_is_answered_by_the_command_layer_in_the_ack(
    runtime: Runtime, slack: SlackSandbox, slack_http: SlackEvents
) -> None:
    response = await slack_http.command("/remind", "list", slack.response_url("remind"))
    expected = await COMMANDS.handle(
        runtime,
        SlashCommand(
            event_id="e", thread=ThreadRef("slack", TEAM_ID, CHANNEL, ""), user_id=USER, command="/remind", text="list"
        ),
    )
    assert response.status_code == 200
    assert response.json() == {"text": expected.text, "response_type": "ephemeral"}


async def test_an_unknown_command_is_acked_with_the_known_ones(
    runtime: Runtime, slack: SlackSandbox, slack_http: SlackEvents
) -> None:
    response = await slack_http.command("/dance", "now", slack.response_url("dance"))
    assert response.status_code == 200
    text = response.json()["text"]
    assert text.startswith("I don't know /dance. I know /ask, /chain, /transcribe, /remind")
    assert f"<@{BOT_USER_ID}>" not in text


async def test_remind_in_two_seconds_posts_the_reminder_in_the_channel_once(
    runtime: Runtime, worker: asyncio.Task[None], slack: SlackSandbox, slack_http: SlackEvents
) -> None:
    response = await slack_http.command("/remind", "in 2 seconds stretch your legs", slack.response_url("remind"))
    assert response.status_code == 200
    receipt = response.json()["text"]
    assert receipt.startswith("⏰ I'll remind you ")
    assert ": stretch your legs (id r" in receipt
    reminders = await wait_for(lambda: [m for m in slack.messages if "stretch your legs" in m.text])
    await asyncio.sleep(1.0)
    assert [m.text for m in slack.messages if "stretch your legs" in m.text] == [reminders[0].text]
    assert reminders[0].channel == CHANNEL
    assert reminders[0].text == f"⏰ Reminder for <@{USER}>: stretch your legs"
