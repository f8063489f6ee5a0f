"""The sandbox Discord speaks the protocol: bot auth, nonce idempotency, scripted 429/403, and a gateway handshake
(HELLO, IDENTIFY, READY, GUILD_CREATE, heartbeat ACK) over a real websocket."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from sandbox.discord_server import FakeDiscord, Fault


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        yield server


@pytest.fixture
async def http(fake: FakeDiscord) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bot {fake.token}"}) as session:
        yield session


async def test_requests_without_the_bot_token_are_refused(fake: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as anonymous, anonymous.get(fake.api_base + "/users/@me") as response:
        assert response.status == 401


async def test_enforce_nonce_returns_the_first_message(fake: FakeDiscord, http: aiohttp.ClientSession) -> None:
    channel = fake.add_channel(fake.add_guild("g"), "c")
    url = f"{fake.api_base}/channels/{channel}/messages"
    bodies: list[dict[str, Any]] = []
    for content in ("one", "two"):
        async with http.post(url, json={"content": content, "nonce": "n1", "enforce_nonce": True}) as response:
            assert response.headers["Content-Type"] == "application/json"
            bodies.append(await response.json())
    async with http.post(url, json={"content": "three", "nonce": "n1"}) as response:  # not enforced: a new one
        bodies.append(await response.json())
    assert bodies[0]["id"] == bodies[1]["id"] != bodies[2]["id"]
    assert fake.texts(channel) == ["one", "three"]


async def test_scripted_429_and_403_look_like_discords(fake: FakeDiscord, http: aiohttp.ClientSession) -> None:
    channel = fake.add_channel(fake.add_guild("g"), "c")
    url = f"{fake.api_base}/channels/{channel}/messages"
    fake.fail(Fault(r"POST /channels/\d+/messages", retry_after=1.5, global_=True))
    async with http.post(url, json={"content": "x"}) as response:
        assert response.status == 429
        assert response.headers["X-RateLimit-Global"] == "true"
        assert await response.json() == {"message": "You are being rate limited.", "retry_after": 1.5, "global": True}
    fake.forbid(channel, "send")
    async with http.post(url, json={"content": "x"}) as response:
        assert response.status == 403
        assert (await response.json())["code"] == 50013


async def test_gateway_handshake(fake: FakeDiscord) -> None:
    fake.add_channel(guild := fake.add_guild("Team"), "general")
    async with aiohttp.ClientSession() as session, session.ws_connect(fake.gateway_url + "?v=10") as ws:
        hello = json.loads(await ws.receive_str())
        assert hello["op"] == 10
        assert hello["d"]["heartbeat_interval"] > 0
        await ws.send_str(json.dumps({"op": 1, "d": None}))
        assert json.loads(await ws.receive_str())["op"] == 11
        await ws.send_str(json.dumps({"op": 2, "d": {"token": fake.token, "intents": 37377, "properties": {}}}))
        ready = json.loads(await ws.receive_str())
        assert (ready["t"], ready["s"]) == ("READY", 1)
        assert ready["d"]["guilds"] == [{"id": guild, "unavailable": True}]
        created = json.loads(await ws.receive_str())
        assert created["t"] == "GUILD_CREATE"
        assert [c["name"] for c in created["d"]["channels"]] == ["general"]
        assert fake.intents == 37377


async def test_gateway_refuses_a_wrong_token(fake: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(fake.gateway_url) as ws:
        await ws.receive_str()
        await ws.send_str(json.dumps({"op": 2, "d": {"token": "wrong", "intents": 0}}))
        closing = await ws.receive()
        assert closing.type == aiohttp.WSMsgType.CLOSE
        assert closing.data == 4004


async def test_control_endpoints_let_a_person_talk_and_read(fake: FakeDiscord) -> None:
    channel = fake.add_channel(fake.add_guild("g"), "general")
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{fake.origin}/_sandbox/message", json={"text": "hi", "user": "ada"}) as response:
            said = await response.json()
        assert said["content"] == f"<@{fake.bot_user['id']}> hi"
        assert said["author"]["username"] == "ada"
        async with session.get(f"{fake.origin}/_sandbox/channels/{channel}") as response:
            assert await response.json() == {"messages": [said["content"]], "threads": {}}
