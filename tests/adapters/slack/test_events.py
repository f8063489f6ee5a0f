"""Slack events through real signed HTTP requests into the adapter, the real worker, the stand-in LLM and the
sandbox Slack server: what a user in Slack would see."""

from __future__ import annotations

import asyncio

from bot.runtime import Runtime
from sandbox.openai_server import StandInLLM, Step
from sandbox.slack_server import SlackSandbox
from tests.adapters.slack.conftest import CHANNEL, SlackEvents, mention, message, stored_messages
from tests.conftest import wait_for


async def test_mention_in_a_channel_gets_one_threaded_streamed_reply(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM, slack: SlackSandbox, slack_http: SlackEvents
) -> None:
    stand_in.script(Step(reply="Paris is the capital of France, and has been for a long time."))
    event = mention("What is the capital of France?")
    response = await slack_http.event(event)
    assert response.status_code == 200

    await wait_for(lambda: [m for m in slack.thread(CHANNEL, event["ts"]) if "long time" in m.text])
    replies = slack.thread(CHANNEL, event["ts"])
    assert [m.text for m in replies] == ["Paris is the capital of France, and has been for a long time."]
    posts = slack.calls_to("chat.postMessage")
    assert len(posts) == 1
    assert posts[0].args["thread_ts"] == event["ts"]
    assert posts[0].args["metadata"]["event_payload"]["key"].startswith("reply:")
    assert slack.calls_to("chat.update"), "the reply was streamed: posted early, then edited to the full text"
    prompt = stand_in.chat_requests()[-1]["messages"]
    assert prompt[-1] == {"role": "user", "content": "What is the capital of France?"}
    rows = await stored_messages(runtime)
    assert [(r.role, r.status) for r in rows] == [("user", "completed"), ("assistant", "completed")]
