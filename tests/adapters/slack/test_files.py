"""Files shared in Slack: normalised to FileRef from a real file_share event, downloaded with the bot token from
Slack's pinned origins only (scheme, host and port; redirects too), streamed, within the size limit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from aiohttp import web

from adapters.slack.files import SlackFileSource
from adapters.slack.inbound import to_event
from adapters.slack.types import MessageEvent
from adapters.slack.webapi import fixed_token
from bot.errors import InvalidInput, PermanentUpstreamError
from bot.events import FileRef
from bot.runtime import Runtime
from sandbox.openai_server import StandInLLM
from sandbox.serving import LocalServer
from sandbox.slack_server import BOT_USER_ID, TEAM_ID, SandboxFile, SlackSandbox
from tests.adapters.slack.conftest import DM, USER, SlackEvents, message
from tests.conftest import wait_for

TOKEN = "xoxb-secret"


class FileHost(LocalServer):
    """Any web server on 127.0.0.1 (where the sandbox runs too): records what each request carried, answers a path in
    `redirects` with a 302 there, anything else with the file."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[tuple[str, str]] = []  # (path, Authorization header)
        self.redirects: dict[str, str] = {}

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._serve)
        return app

    async def _serve(self, request: web.Request) -> web.Response:
        self.received.append((request.path, request.headers.get("Authorization", "")))
        if request.path in self.redirects:
            return web.Response(status=302, headers={"Location": self.redirects[request.path]})
        return web.Response(body=b"the file", content_type="text/plain")

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.bound_port}"


@pytest.fixture
async def proxy() -> AsyncIterator[FileHost]:
    """Stands for a proxy SLACK_API_URL points at."""
    async with FileHost() as host:
        yield host


@pytest.fixture
async def bystander() -> AsyncIterator[FileHost]:
    """Another service on the same host, on a port of its own."""
    async with FileHost() as host:
        yield host


def file_at(url: str) -> FileRef:
    return FileRef("F1", "a.txt", "text/plain", 8, url)


def file_payload(slack: SlackSandbox, file: SandboxFile, **overrides: Any) -> dict[str, Any]:
    return {
        "id": file.file_id,
        "name": file.name,
        "title": file.name,
        "mimetype": file.mime_type,
        "size": len(file.content),
        "mode": "hosted",
        "url_private": slack.download_url(file),
        "url_private_download": slack.download_url(file),
        **overrides,
    }


def ref(slack: SlackSandbox, file: SandboxFile, **overrides: Any) -> FileRef:
    values: dict[str, Any] = {
        "file_id": file.file_id,
        "name": file.name,
        "mime_type": file.mime_type,
        "size": len(file.content),
        "url": slack.download_url(file),
        **overrides,
    }
    return FileRef(**values)


async def read_all(source: SlackFileSource, file: FileRef, max_bytes: int) -> bytes:
    return b"".join([chunk async for chunk in source.download(file, max_bytes=max_bytes)])


async def test_a_file_shared_in_a_dm_is_digested_in_its_thread_with_the_transcript_attached(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM, slack: SlackSandbox, slack_http: SlackEvents
) -> None:
    notes = slack.add_file("notes.txt", b"Ada: we ship the beta on Friday.\nLin: budget review next week.\n")
    event = message("", channel=DM, channel_type="im", subtype="file_share", files=[file_payload(slack, notes)])
    await slack_http.event(event)
    done = await wait_for(
        lambda: [m for m in slack.thread(DM, event["ts"]) if m.text.startswith("✅ notes.txt: digest below")],
        timeout_s=30,
    )
    thread = slack.thread(DM, event["ts"])
    assert thread[0] is done[0], "the progress message, posted first, ends saying where the digest is"
    digest = [m for m in thread if "**Summary**" in m.text or "*Summary*" in m.text]
    assert digest, [m.text for m in thread]
    [upload] = await wait_for(lambda: [m for m in slack.thread(DM, event["ts"]) if m.files])
    [file_id] = upload.files
    assert slack.files[file_id].name == "notes-transcript.txt"
    assert b"we ship the beta on Friday" in slack.files[file_id].content
    assert any("we ship the beta on Friday" in json.dumps(r["messages"]) for r in stand_in.chat_requests())

    incoming = to_event(TEAM_ID, cast(MessageEvent, event), BOT_USER_ID)
    assert incoming.user_id == USER
    assert incoming.text == "Shared “notes.txt”"
    assert incoming.files == (ref(slack, notes),)
    source = SlackFileSource(fixed_token(slack.bot_token), slack.api_url)
    assert await read_all(source, incoming.files[0], max_bytes=1000) == notes.content


async def test_download_streams_in_chunks_within_the_limit(slack: SlackSandbox) -> None:
    big = slack.add_file("audio.wav", bytes(range(256)) * 4096, "audio/wav")
    source = SlackFileSource(fixed_token(slack.bot_token), slack.api_url)
    chunks = [c async for c in source.download(ref(slack, big), max_bytes=2_000_000)]
    assert len(chunks) > 1
    assert b"".join(chunks) == big.content


async def test_a_file_over_the_limit_is_refused_with_a_clear_message(slack: SlackSandbox) -> None:
    big = slack.add_file("talk.mp4", b"x" * 5_000_000, "video/mp4")
    source = SlackFileSource(fixed_token(slack.bot_token), slack.api_url)
    with pytest.raises(InvalidInput) as declared:
        await read_all(source, ref(slack, big), max_bytes=1_000_000)
    assert declared.value.user_message == (
        "“talk.mp4” is 5 MB; the largest file I accept is 1 MB. Share a shorter or compressed version."
    )
    # A payload that understates the size is caught while streaming, not trusted.
    with pytest.raises(InvalidInput, match=r"largest file I accept is 1,000,000 bytes"):
        await read_all(source, ref(slack, big, size=10), max_bytes=1_000_000)


async def test_a_file_url_off_slacks_hosts_is_refused_before_any_request(slack: SlackSandbox) -> None:
    source = SlackFileSource(fixed_token(slack.bot_token), slack.api_url)
    stranger = FileRef("F1", "evil.txt", "text/plain", 10, "https://attacker.example/files-pri/F1/evil.txt")
    with pytest.raises(InvalidInput) as refused:
        await read_all(source, stranger, max_bytes=1000)
    assert (
        refused.value.user_message
        == "I can only read files shared in Slack itself; “evil.txt” points to attacker.example."
    )
    plain_http = FileRef("F2", "a.txt", "text/plain", 10, "http://files.slack.com/files-pri/F2/a.txt")
    with pytest.raises(InvalidInput):
        await read_all(source, plain_http, max_bytes=1000)
    assert source.allowed("https://files.slack.com/files-pri/T1-F1/download/a.txt")


async def test_a_download_without_access_says_what_is_missing(slack: SlackSandbox) -> None:
    secret = slack.add_file("secret.txt", b"classified")
    wrong_token = SlackFileSource(fixed_token("xoxb-not-ours"), slack.api_url)
    with pytest.raises(PermanentUpstreamError) as denied:
        await read_all(wrong_token, ref(slack, secret), max_bytes=1000)
    assert "files:read" in denied.value.user_message


def test_the_pins_are_scheme_host_and_port() -> None:
    real = SlackFileSource(fixed_token(TOKEN), "https://slack.com/api/")
    for url in (
        "https://files.slack.com/files-pri/T1-F1/a.txt",
        "https://files.slack.com:443/x",
        "https://slack.com/x",
    ):
        assert real.allowed(url), url
    for url in (
        "https://files.slack.com:8443/x",
        "http://files.slack.com/x",
        "https://slack.com:444/x",
        "https://evil.slack.com/x",
        "https://user:pw@files.slack.com/x",
        "https://files.slack.com:nope/x",
        "ftp://files.slack.com/x",
    ):
        assert not real.allowed(url), url
    proxied = SlackFileSource(fixed_token(TOKEN), "http://proxy.internal:8080/slack/api/")
    assert proxied.allowed("http://proxy.internal:8080/files-pri/T1-F1/a.txt")
    for url in ("http://proxy.internal/x", "http://proxy.internal:8081/x", "https://proxy.internal:8080/x"):
        assert not proxied.allowed(url), url
    assert SlackFileSource(fixed_token(TOKEN), "http://proxy.internal/api/").allowed("http://proxy.internal:80/x")


async def test_a_file_on_the_api_host_but_another_port_is_refused_and_never_gets_the_token(
    slack: SlackSandbox, bystander: FileHost
) -> None:
    assert bystander.host == slack.host
    assert bystander.bound_port != slack.bound_port
    source = SlackFileSource(fixed_token(TOKEN), slack.api_url)
    with pytest.raises(InvalidInput) as refused:
        await read_all(source, file_at(f"{bystander.origin}/files-pri/{TEAM_ID}-F1/a.txt"), max_bytes=1000)
    assert refused.value.user_message == (
        f"I can only read files shared in Slack itself; “a.txt” points to 127.0.0.1:{bystander.bound_port}."
    )
    assert bystander.received == []


async def test_a_redirect_to_another_origin_is_refused_and_the_token_never_goes_there(
    proxy: FileHost, bystander: FileHost
) -> None:
    source = SlackFileSource(fixed_token(TOKEN), f"{proxy.origin}/api/")
    path = f"/files-pri/{TEAM_ID}-F1/a.txt"
    proxy.redirects[path] = f"{bystander.origin}{path}"
    with pytest.raises(InvalidInput) as refused:
        await read_all(source, file_at(f"{proxy.origin}{path}"), max_bytes=1000)
    assert refused.value.user_message == (
        f"I can only read files shared in Slack itself; “a.txt” redirects to 127.0.0.1:{bystander.bound_port}."
    )
    assert proxy.received == [(path, f"Bearer {TOKEN}")]
    assert bystander.received == []


async def test_a_redirect_within_the_origin_is_followed_with_the_token(proxy: FileHost) -> None:
    source = SlackFileSource(fixed_token(TOKEN), f"{proxy.origin}/api/")
    proxy.redirects["/files-pri/T1-F1/a.txt"] = "/files-pri/T1-F1/download/a.txt"  # a relative Location
    assert await read_all(source, file_at(f"{proxy.origin}/files-pri/T1-F1/a.txt"), max_bytes=1000) == b"the file"
    assert proxy.received == [
        ("/files-pri/T1-F1/a.txt", f"Bearer {TOKEN}"),
        ("/files-pri/T1-F1/download/a.txt", f"Bearer {TOKEN}"),
    ]


async def test_a_redirect_loop_ends_in_a_clear_error(proxy: FileHost) -> None:
    source = SlackFileSource(fixed_token(TOKEN), f"{proxy.origin}/api/")
    proxy.redirects["/a"] = "/b"
    proxy.redirects["/b"] = "/a"
    with pytest.raises(PermanentUpstreamError) as failed:
        await read_all(source, file_at(f"{proxy.origin}/a"), max_bytes=1000)
    assert failed.value.user_message == "I couldn't download “a.txt” from Slack."
    assert len(proxy.received) == 4
