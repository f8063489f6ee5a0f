"""Socket Mode smoke test: apps.connections.open on SLACK_API_URL, a real websocket, an acked envelope, a reply."""

from __future__ import annotations

import asyncio

from adapters.slack.serve import serving_socket_mode
from bot.runtime import Runtime
from sandbox.openai_server import StandInLLM, Step
from sandbox.slack_server import SlackSandbox
from tests.adapters.slack.conftest import CHANNEL, event_body, mention
from tests.conftest import wait_for


async def test_socket_mode_acks_the_envelope_and_replies_in_the_thread(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM, slack: SlackSandbox
) -> None:
    stand_in.script(Step(reply="Hello over the socket."))
    event = mention("Are you on Socket Mode?")
    async with serving_socket_mode(runtime):
        for attempt in (0, 1):  # the second is Slack's redelivery of an envelope it thinks was not acked
            await slack.push_socket_event(
                {
                    "envelope_id": f"env-{attempt}",
                    "type": "events_api",
                    "accepts_response_payload": False,
                    "retry_attempt": attempt,
                    "retry_reason": "timeout" if attempt else "",
                    "payload": event_body(event, "Ev0SOCKET"),
                }
            )
        await wait_for(lambda: {a.get("envelope_id") for a in slack.socket_acks} >= {"env-0", "env-1"})
        await wait_for(lambda: [m for m in slack.thread(CHANNEL, event["ts"]) if m.text == "Hello over the socket."])
    assert slack.socket_connections == 1
    assert len(slack.calls_to("apps.connections.open")) == 1
    assert slack.calls_to("apps.connections.open")[0].token == slack.app_token
    assert [m.text for m in slack.thread(CHANNEL, event["ts"])] == ["Hello over the socket."]
