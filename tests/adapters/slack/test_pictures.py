"""A picture shared with a question on Slack: it reaches the model as an image part, through the sandbox."""

from __future__ import annotations

import asyncio
import base64
import struct
import zlib

import pytest

from bot.runtime import Runtime
from sandbox.openai_server import StandInLLM, Step
from sandbox.slack_server import SlackSandbox
from tests.adapters.slack.conftest import CHANNEL, SlackEvents, mention
from tests.adapters.slack.test_files import file_payload
from tests.conftest import wait_for


def png(width: int = 2, height: int = 2) -> bytes:
    """A real PNG (red pixels), as a screenshot tool writes one."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


async def test_a_screenshot_with_a_question_reaches_the_model_as_an_image(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM, slack: SlackSandbox, slack_http: SlackEvents
) -> None:
    picture = png()
    shot = slack.add_file("chart.png", picture, "image/png")
    stand_in.script(Step(reply="The chart shows one red square."))
    event = {**mention("What does this chart show?"), "files": [file_payload(slack, shot)]}
    await slack_http.event(event)

    await wait_for(lambda: [m for m in slack.thread(CHANNEL, event["ts"]) if "red square" in m.text])
    [request] = stand_in.chat_requests()
    content = request["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "What does this chart show?"}
    assert content[1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64," + base64.b64encode(picture).decode()},
    }


async def test_a_file_named_png_that_is_not_a_picture_is_refused_in_the_thread(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM, slack: SlackSandbox, slack_http: SlackEvents
) -> None:
    fake = slack.add_file("chart.png", b"#!/bin/sh\necho not a picture\n", "image/png")
    event = {**mention("What is this?"), "files": [file_payload(slack, fake)]}
    await slack_http.event(event)
    [notice] = await wait_for(lambda: [m for m in slack.thread(CHANNEL, event["ts"]) if "⚠️" in m.text])
    assert "“chart.png” is not a PNG, JPEG, GIF or WebP picture" in notice.text
    assert stand_in.chat_requests() == []


@pytest.mark.slack_settings(llm_vision=False)
async def test_without_vision_a_picture_is_refused_saying_why(
    runtime: Runtime, stand_in: StandInLLM, slack: SlackSandbox, slack_http: SlackEvents
) -> None:
    shot = slack.add_file("chart.png", png(), "image/png")
    event = {**mention("What does this chart show?"), "files": [file_payload(slack, shot)]}
    response = await slack_http.event(event)
    assert response.status_code == 200
    [refusal] = await wait_for(lambda: slack.calls_to("chat.postEphemeral"))
    assert "does not read pictures" in refusal.args["text"]
