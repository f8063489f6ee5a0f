"""Slack fixtures: the sandbox Web API server, settings pointing at it, the adapter serving HTTP on a free port, and a
client that sends Slack-signed requests the way Slack does."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import select
from sqlmodel import col

from adapters.slack.serve import EVENTS_PATH, serving_http
from bot.config import Settings
from bot.models import Message
from bot.runtime import Runtime
from sandbox.openai_server import StandInLLM
from sandbox.slack_server import BOT_ID, BOT_USER_ID, TEAM_ID, SlackSandbox
from tests.conftest import make_settings

SIGNING_SECRET = "test-signing-secret"
USER = "U0ADA0001"
CHANNEL = "C0GENERAL"
DM = "D0ADA0001"

_ts = itertools.count(1)
_ids = itertools.count(1)

__all__ = ["BOT_ID", "BOT_USER_ID", "CHANNEL", "DM", "TEAM_ID", "USER"]


@pytest.fixture
async def slack() -> AsyncIterator[SlackSandbox]:
    async with SlackSandbox() as sandbox:
        yield sandbox


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slack_settings(**values): settings overrides for one Slack test")


@pytest.fixture
def settings(
    request: pytest.FixtureRequest,
    database_url: str,
    redis_url: str,
    stand_in: StandInLLM,
    tmp_path: Path,
    slack: SlackSandbox,
) -> Settings:
    """Overrides the shared `settings`: the shared `runtime` and `worker` fixtures then talk to the sandbox."""
    marker = request.node.get_closest_marker("slack_settings")
    overrides = marker.kwargs if marker is not None else {}
    return slack_settings(database_url, redis_url, stand_in, tmp_path, slack, **overrides)


def slack_settings(
    database_url: str, redis_url: str, stand_in: StandInLLM, tmp_path: Path, slack: SlackSandbox, **overrides: Any
) -> Settings:
    return make_settings(
        database_url,
        redis_url,
        stand_in.base_url,
        tmp_path,
        slack_bot_token=slack.bot_token,
        slack_app_token=slack.app_token,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=slack.api_url,
        **overrides,
    )


def new_ts() -> str:
    return f"1690000000.{next(_ts):06d}"


def sign(body: bytes, timestamp: int, secret: str = SIGNING_SECRET) -> str:
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


@dataclass
class SlackEvents:
    """Sends requests to the adapter as Slack does: signed, with Slack's headers."""

    url: str
    http: httpx.AsyncClient

    async def post(
        self,
        body: bytes,
        content_type: str,
        *,
        retry: int | None = None,
        secret: str = SIGNING_SECRET,
        age_s: int = 0,
    ) -> httpx.Response:
        timestamp = int(time.time()) - age_s
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": str(timestamp),
            "X-Slack-Signature": sign(body, timestamp, secret),
        }
        if retry is not None:
            headers["X-Slack-Retry-Num"] = str(retry)
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        return await self.http.post(self.url, content=body, headers=headers)

    async def event(
        self, event: dict[str, Any], *, event_id: str = "", team: str = TEAM_ID, **kwargs: Any
    ) -> httpx.Response:
        return await self.post(json.dumps(event_body(event, event_id, team)).encode(), "application/json", **kwargs)

    async def command(self, command: str, text: str, response_url: str, **fields: str) -> httpx.Response:
        form = {
            "token": "legacy",
            "team_id": TEAM_ID,
            "team_domain": "sandbox",
            "channel_id": fields.pop("channel_id", CHANNEL),
            "channel_name": "general",
            "user_id": fields.pop("user_id", USER),
            "user_name": "ada",
            "command": command,
            "text": text,
            "api_app_id": "A0THREADBOT",
            "response_url": response_url,
            "trigger_id": f"trigger.{next(_ids)}",
            **fields,
        }
        return await self.post(urlencode(form).encode(), "application/x-www-form-urlencoded")


def event_body(event: dict[str, Any], event_id: str = "", team: str = TEAM_ID) -> dict[str, Any]:
    return {
        "token": "legacy",
        "team_id": team,
        "api_app_id": "A0THREADBOT",
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{next(_ids):08d}",
        "event_time": int(time.time()),
        "authorizations": [{"team_id": team, "user_id": BOT_USER_ID, "is_bot": True}],
    }


def mention(
    text: str, *, channel: str = CHANNEL, ts: str = "", thread_ts: str = "", user: str = USER
) -> dict[str, Any]:
    event = {
        "type": "app_mention",
        "user": user,
        "text": f"<@{BOT_USER_ID}> {text}",
        "ts": ts or new_ts(),
        "channel": channel,
        "team": TEAM_ID,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def message(
    text: str,
    *,
    channel: str = CHANNEL,
    channel_type: str = "channel",
    ts: str = "",
    thread_ts: str = "",
    user: str = USER,
    **extra: Any,
) -> dict[str, Any]:
    event = {
        "type": "message",
        "user": user,
        "text": text,
        "ts": ts or new_ts(),
        "channel": channel,
        "channel_type": channel_type,
        "team": TEAM_ID,
        **extra,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


@pytest.fixture
async def slack_http(runtime: Runtime) -> AsyncIterator[SlackEvents]:
    """The adapter in HTTP mode on a free port, as `bot serve slack --http` runs it."""
    async with serving_http(runtime, port=0) as port, httpx.AsyncClient(timeout=10.0) as http:
        yield SlackEvents(url=f"http://127.0.0.1:{port}{EVENTS_PATH}", http=http)


async def stored_messages(rt: Runtime) -> list[Message]:
    async with rt.sessions() as session:
        return list((await session.execute(select(Message).order_by(col(Message.id)))).scalars())
