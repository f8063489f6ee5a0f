"""Things done to a message on Slack: a reaction that runs a chain, the Summarize and Ask message shortcuts."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select

from bot.runtime import Runtime
from bot.workflows.models import RUNS
from sandbox.openai_server import StandInLLM, Step
from sandbox.slack_server import SlackSandbox
from tests.adapters.slack.conftest import CHANNEL, TEAM_ID, USER, SlackEvents, mention, new_ts
from tests.conftest import wait_for


def reaction(name: str, ts: str, *, user: str = USER) -> dict[str, Any]:
    return {
        "type": "reaction_added",
        "user": user,
        "reaction": name,
        "item": {"type": "message", "channel": CHANNEL, "ts": ts},
        "item_user": USER,
        "event_ts": new_ts(),
    }


async def shortcut(slack_http: SlackEvents, callback_id: str, message: dict[str, Any]) -> int:
    payload = {
        "type": "message_action",
        "callback_id": callback_id,
        "trigger_id": "trigger.1",
        "team": {"id": TEAM_ID, "domain": "sandbox"},
        "user": {"id": USER, "name": "ada"},
        "channel": {"id": CHANNEL, "name": "general"},
        "message": message,
        "message_ts": message["ts"],
        "response_url": "https://hooks.slack.invalid/actions/1",
        "action_ts": new_ts(),
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    response = await slack_http.post(body, "application/x-www-form-urlencoded")
    return response.status_code


async def chain_runs(runtime: Runtime) -> list[str]:
    async with runtime.autocommit.connect() as conn:
        rows = await conn.execute(select(RUNS.c.description).where(RUNS.c.workflow == "chain_run"))
        return [str(d) for d in rows.scalars()]


async def test_a_memo_reaction_summarizes_the_thread_once_even_when_delivered_twice(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM, slack: SlackSandbox, slack_http: SlackEvents
) -> None:
    stand_in.script(Step(reply="We go with blue."), Step(reply="Summary: blue was chosen."))
    root = mention("Blue or red for the logo? Blue, I think.")
    await slack_http.event(root)
    await wait_for(lambda: [m for m in slack.thread(CHANNEL, root["ts"]) if m.text == "We go with blue."])

    assert (await slack_http.event(reaction("thumbsup", root["ts"]))).status_code == 200  # not configured
    added = reaction("memo", root["ts"])
    assert (await slack_http.event(added)).status_code == 200
    assert (await slack_http.event(added)).status_code == 200  # Slack's redelivery, a new event id

    await wait_for(lambda: [m for m in slack.thread(CHANNEL, root["ts"]) if "blue was chosen" in m.text])
    await asyncio.sleep(0.5)  # room for a second summary, which must not come
    assert await chain_runs(runtime) == [":memo: on a message: thread-summary"]
    shown = [m.text for m in slack.thread(CHANNEL, root["ts"])]
    assert shown == ["We go with blue.", "🧵 *Thread summary*\n\nSummary: blue was chosen."]
    summary_prompt = json.dumps(stand_in.chat_requests()[-1]["messages"])
    assert "Blue or red for the logo?" in summary_prompt, "the chain read the reacted message's thread"


async def test_the_summarize_shortcut_posts_the_summary_in_the_messages_thread(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM, slack: SlackSandbox, slack_http: SlackEvents
) -> None:
    stand_in.script(Step(reply="Noted."), Step(reply="Summary: the launch moved to Friday."))
    root = mention("The launch moves to Friday.")
    await slack_http.event(root)
    await wait_for(lambda: [m for m in slack.thread(CHANNEL, root["ts"]) if m.text == "Noted."])

    status = await shortcut(slack_http, "summarize_thread", {"type": "message", "ts": root["ts"], "text": "x"})
    assert status == 200
    await wait_for(lambda: [m for m in slack.thread(CHANNEL, root["ts"]) if "moved to Friday" in m.text])
    [told] = await wait_for(lambda: slack.calls_to("chat.postEphemeral"))
    assert "Running “thread-summary”" in told.args["text"]


async def test_ask_about_this_answers_a_question_quoting_the_message_in_its_thread(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM, slack: SlackSandbox, slack_http: SlackEvents
) -> None:
    stand_in.script(Step(reply="It asks you to review the budget by Monday."))
    ts, thread_ts = new_ts(), new_ts()
    message = {
        "type": "message",
        "ts": ts,
        "thread_ts": thread_ts,
        "user": "U0LIN0002",
        "text": "Budget review by Mon?",
    }
    assert await shortcut(slack_http, "ask_about_message", message) == 200

    await wait_for(lambda: slack.thread(CHANNEL, thread_ts))
    assert [m.text for m in slack.thread(CHANNEL, thread_ts)] == ["It asks you to review the budget by Monday."]
    asked = stand_in.chat_requests()[0]["messages"][-1]["content"]
    assert asked == "Explain this message and anything it asks of me:\n\n> Budget review by Mon?"
