"""The sandbox Slack server speaks the Web API the way slack_sdk expects: checked with the real AsyncWebClient."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from sandbox.slack_server import BOT_USER_ID, MAX_TEXT_CHARS, Failure, SlackSandbox


@pytest.fixture
async def slack() -> AsyncIterator[SlackSandbox]:
    async with SlackSandbox() as sandbox:
        yield sandbox


def client(slack: SlackSandbox, token: str | None = None) -> AsyncWebClient:
    return AsyncWebClient(token=token or slack.bot_token, base_url=slack.api_url)


async def test_auth_and_a_wrong_token(slack: SlackSandbox) -> None:
    assert (await client(slack).auth_test())["user_id"] == BOT_USER_ID
    with pytest.raises(SlackApiError, match="invalid_auth"):
        await client(slack, "xoxb-wrong").auth_test()


async def test_post_update_and_replies_with_metadata(slack: SlackSandbox) -> None:
    web = client(slack)
    parent = await web.chat_postMessage(channel="C1", text="parent")
    reply = await web.chat_postMessage(
        channel="C1", thread_ts=parent["ts"], text="a", metadata={"event_type": "t", "event_payload": {"key": "k"}}
    )
    await web.chat_update(channel="C1", ts=reply["ts"], text="b")
    plain = await web.conversations_replies(channel="C1", ts=parent["ts"])
    full = await web.conversations_replies(channel="C1", ts=parent["ts"], include_all_metadata=True)
    assert [m["text"] for m in plain["messages"]] == ["parent", "b"]
    assert "metadata" not in plain["messages"][1]
    assert full["messages"][1]["metadata"] == {"event_type": "t", "event_payload": {"key": "k"}}


async def test_scripted_429_and_msg_too_long(slack: SlackSandbox) -> None:
    web = client(slack)
    slack.fail(Failure("chat.postMessage", retry_after=7))
    with pytest.raises(SlackApiError) as limited:
        await web.chat_postMessage(channel="C1", text="x")
    assert limited.value.response.status_code == 429
    assert limited.value.response.headers["Retry-After"] == "7"
    with pytest.raises(SlackApiError, match="msg_too_long"):
        await web.chat_postMessage(channel="C1", text="x" * (MAX_TEXT_CHARS + 1))
    assert slack.messages == []


async def test_chat_stream_and_files_upload_v2(slack: SlackSandbox) -> None:
    web = client(slack)
    stream = await web.chat_stream(channel="D1", thread_ts="1.0", buffer_size=1)
    await stream.append(markdown_text="hello ")
    await stream.append(markdown_text="world")
    await stream.stop()
    [streamed] = slack.thread("D1", "1.0")
    assert (streamed.text, streamed.streaming) == ("hello world", False)

    done = await web.files_upload_v2(channel="D1", thread_ts="1.0", filename="t.txt", content="transcript")
    file_id = done["file"]["id"]
    assert slack.files[file_id].content == b"transcript"
    assert done["file"]["shares"] == {}, "as on Slack, the share is made after the answer"
    shared = slack.thread("D1", "1.0")[-1]
    assert shared.files == [file_id]
    info = await web.files_info(file=file_id)
    assert info["file"]["shares"] == {"private": {"D1": [{"ts": shared.ts, "thread_ts": "1.0"}]}}


async def test_private_files_need_the_bot_token(slack: SlackSandbox) -> None:
    file = slack.add_file("a.txt", b"secret")
    async with httpx.AsyncClient() as http:
        anonymous = await http.get(slack.download_url(file))
        authorised = await http.get(slack.download_url(file), headers={"Authorization": f"Bearer {slack.bot_token}"})
    assert anonymous.headers["content-type"].startswith("text/html")
    assert authorised.content == b"secret"
