"""A worker killed with SIGKILL in the middle of a natively streamed Slack reply (a DM), then Redis flushed before
another worker replays the turn: the outbox in Postgres is the one record of the started stream, so the replay
edits that message instead of starting a second one."""

from __future__ import annotations

import signal

from bot.runtime import Runtime
from sandbox.openai_server import StandInLLM, Step
from sandbox.slack_server import SlackSandbox
from tests.adapters.slack.conftest import DM, SlackEvents, message
from tests.conftest import wait_for, worker_process

ANSWER = " ".join(f"word{i}" for i in range(60))


def streamed_words(slack: SlackSandbox, ts: str) -> int:
    return sum(len(m.text.split()) for m in slack.thread(DM, ts) if m.streaming)


async def test_a_killed_native_stream_replayed_after_a_redis_flush_is_one_message(
    runtime: Runtime, stand_in: StandInLLM, slack: SlackSandbox, slack_http: SlackEvents
) -> None:
    stand_in.script(Step(reply=ANSWER), Step(reply=ANSWER))
    stand_in.token_delay = 0.15  # a slow model: the first worker is mid-stream when it dies
    event = message("Tell me sixty words.", channel=DM, channel_type="im")
    await slack_http.event(event)

    async with worker_process(runtime, "A") as first:
        # Appended to, so past the start: the outbox holds the stream's message (a kill between Slack's answer to
        # chat.startStream and that record is the one window a native stream cannot cover; see stream.py).
        await wait_for(lambda: streamed_words(slack, event["ts"]) >= 5, timeout_s=60)
        first.send_signal(signal.SIGKILL)
        await first.wait()
    [partial] = slack.thread(DM, event["ts"])
    assert partial.text != ANSWER, "killed in the middle of the reply"
    await runtime.redis.flushdb()  # every wake-up and anything else Redis held is gone

    stand_in.token_delay = 0.0
    async with worker_process(runtime, "B"):
        await wait_for(lambda: [m.text for m in slack.thread(DM, event["ts"])] == [ANSWER], timeout_s=60)
    assert [m.ts for m in slack.thread(DM, event["ts"])] == [partial.ts], "the started stream was finished, once"
    assert len(slack.calls_to("chat.startStream")) == 1
    assert len(stand_in.chat_requests()) == 2
