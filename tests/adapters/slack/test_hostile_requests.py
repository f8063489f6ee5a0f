"""Hostile and malformed requests on /slack/events, over real HTTP into the adapter: unsigned ones are refused with a
401 before anything parses them, signed but malformed ones are acked with one warning line; neither writes a row,
prints a traceback, or floods the log."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
import structlog
from sqlalchemy import text

from bot.clock import FakeClock
from bot.runtime import Runtime
from tests.adapters.slack.conftest import (
    CHANNEL,
    DM,
    SIGNING_SECRET,
    TEAM_ID,
    USER,
    SlackEvents,
    event_body,
    mention,
    message,
    sign,
    stored_messages,
)

REFUSED = "slack request refused"
WRITTEN = ("messages", "threads", "workspaces", "workflow_runs")


@dataclass
class Logs:
    """What the adapter logged during a test, as an operator reads it: our structured lines, the libraries' (Bolt,
    aiohttp) records, and anything printed straight to stdout or stderr."""

    ours: list[MutableMapping[str, Any]]
    caplog: pytest.LogCaptureFixture
    capsys: pytest.CaptureFixture[str]

    def warnings(self) -> list[str]:
        """One entry per line at warning level or worse."""
        lines = [
            f"{entry['log_level']}: {entry['event']} {entry}"
            for entry in self.ours
            if entry["log_level"] in {"warning", "error", "critical"}
        ]
        lines += [record.getMessage() for record in self.caplog.records if record.levelno >= logging.WARNING]
        return lines

    def everything(self) -> str:
        printed = self.capsys.readouterr()
        return "\n".join([str(entry) for entry in self.ours] + [self.caplog.text, printed.out, printed.err])

    def assert_no_traceback(self) -> None:
        assert not [entry for entry in self.ours if "exc_info" in entry or "exception" in entry]
        assert not [record for record in self.caplog.records if record.exc_info]
        assert "Traceback" not in self.everything()


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> Iterator[Logs]:
    caplog.set_level(logging.INFO)
    with structlog.testing.capture_logs() as ours:
        yield Logs(ours, caplog, capsys)


async def rows_written(rt: Runtime) -> dict[str, int]:
    async with rt.autocommit.connect() as conn:
        counts = {table: (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one() for table in WRITTEN}
    return {table: count for table, count in counts.items() if count}


def mention_json() -> bytes:
    return json.dumps(event_body(mention("hello"))).encode()


# -- unsigned ----------------------------------------------------------------------------------------------------

# (what it is, body, headers): each sent without a valid signature.
UNSIGNED: list[tuple[str, bytes, dict[str, str | bytes]]] = [
    ("not JSON", b"{this is not json", {"Content-Type": "application/json"}),
    ("not UTF-8", b"\xff\xfe\xfa payload=\xc3\x28", {"Content-Type": "application/x-www-form-urlencoded"}),
    ("deeply nested", b'{"event": ' + b"[" * 200_000 + b"]" * 200_000 + b"}", {"Content-Type": "application/json"}),
    ("bogus charset", mention_json(), {"Content-Type": "application/json; charset=no-such-charset"}),
    (
        "non-numeric timestamp",
        mention_json(),
        {
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": "soon",
            "X-Slack-Signature": sign(mention_json(), 0),
        },
    ),
    (
        "non-ASCII signature",
        mention_json(),
        {
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": str(int(time.time())),
            "X-Slack-Signature": "v0=caf\xe9".encode("latin-1"),
        },
    ),
    (
        "signature of another body",
        mention_json(),
        {
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": str(int(time.time())),
            "X-Slack-Signature": sign(b"{}", int(time.time())),
        },
    ),
]


@pytest.mark.parametrize(("what", "body", "headers"), UNSIGNED, ids=[case[0] for case in UNSIGNED])
async def test_an_unsigned_hostile_request_is_refused_with_a_401_and_one_short_line(
    runtime: Runtime, slack_http: SlackEvents, logs: Logs, what: str, body: bytes, headers: dict[str, str | bytes]
) -> None:
    raw = {name.encode(): value if isinstance(value, bytes) else value.encode() for name, value in headers.items()}
    response = await slack_http.http.post(slack_http.url, content=body, headers=raw)
    assert response.status_code == 401, what
    assert response.headers["content-type"].startswith("text/plain")
    assert len(response.content) < 100
    [line] = logs.warnings()  # one line, nothing from Bolt or aiohttp
    assert REFUSED in line
    logs.assert_no_traceback()
    logged = logs.everything()
    assert SIGNING_SECRET not in logged
    assert "hello" not in logged, "the body is never logged"
    assert await rows_written(runtime) == {}


async def test_a_flood_of_unsigned_requests_is_logged_once_per_ten_seconds_with_a_count(
    runtime: Runtime, clock: FakeClock, slack_http: SlackEvents, logs: Logs
) -> None:
    for _ in range(20):
        response = await slack_http.http.post(slack_http.url, content=b"x", headers={"Content-Type": "text/plain"})
        assert response.status_code == 401
    assert len(logs.warnings()) == 1
    clock.advance(11)
    assert (await slack_http.post(b"{}", "application/json", secret="forged")).status_code == 401
    refusals = [entry for entry in logs.ours if entry["event"] == REFUSED]
    assert len(refusals) == 2
    assert refusals[1]["suppressed"] == 19, "the requests refused without a line of their own are counted"
    assert await rows_written(runtime) == {}


async def test_the_health_check_is_not_signed(slack_http: SlackEvents) -> None:
    response = await slack_http.http.get(slack_http.url.removesuffix("/slack/events") + "/healthz")
    assert (response.status_code, response.text) == (200, "ok")


# -- signed but malformed ----------------------------------------------------------------------------------------


def without(event: dict[str, Any], field: str) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != field}


def good_file(**overrides: Any) -> dict[str, Any]:
    return {
        "id": "F0NOTES01",
        "name": "notes.txt",
        "mimetype": "text/plain",
        "size": 12,
        "mode": "hosted",
        "url_private_download": "https://files.slack.com/files-pri/T0/notes.txt",
        **overrides,
    }


def dm(**extra: Any) -> dict[str, Any]:
    return message("look at this", channel=DM, channel_type="im", **extra)


MALFORMED_EVENTS: list[tuple[str, dict[str, Any]]] = [
    ("mention without channel", without(mention("where am I?"), "channel")),
    ("mention without ts", without(mention("when am I?"), "ts")),
    ("dm without ts", without(dm(), "ts")),
    ("files as a string", dm(subtype="file_share", files="F0NOTES01")),
    ("file with a non-numeric size", dm(subtype="file_share", files=[good_file(size="twelve")])),
    ("file without an id", dm(subtype="file_share", files=[without(good_file(), "id")])),
    ("a 200-character thread_ts", mention("in a long thread", thread_ts="1" * 200)),
    ("a 200-character channel", mention("in a long channel", channel="C" * 200)),
    ("edit without the message", message("", subtype="message_changed", message="gone", user="")),
]


@pytest.mark.parametrize(("what", "event"), MALFORMED_EVENTS, ids=[case[0] for case in MALFORMED_EVENTS])
async def test_a_signed_malformed_event_is_acked_with_one_warning_and_nothing_stored(
    runtime: Runtime, slack_http: SlackEvents, logs: Logs, what: str, event: dict[str, Any]
) -> None:
    response = await slack_http.event(event)
    assert response.status_code == 200, what
    [warning] = logs.warnings()
    assert "malformed" in warning
    assert f"event:{event['type']}" in warning, "the line says which kind of event it was"
    logs.assert_no_traceback()
    assert await rows_written(runtime) == {}


def command_form(**fields: str) -> dict[str, str]:
    form = {
        "team_id": TEAM_ID,
        "channel_id": CHANNEL,
        "user_id": USER,
        "command": "/ask",
        "text": "what now?",
        "response_url": "https://hooks.slack.com/commands/T0/1/x",
        "trigger_id": "13.42.abc",
        **fields,
    }
    return {k: v for k, v in form.items() if v}


def block_actions(**fields: Any) -> bytes:
    payload = {"type": "block_actions", "team": {"id": TEAM_ID}, "user": {"id": USER}, "trigger_id": "1.2", **fields}
    return urlencode({"payload": json.dumps(payload)}).encode()


FORM = "application/x-www-form-urlencoded"
# (what it is, signed body, content type, words the warning must contain)
MALFORMED_BODIES: list[tuple[str, bytes, str, str]] = [
    ("command without channel", urlencode(command_form(channel_id="")).encode(), FORM, "command:/ask"),
    ("command without user", urlencode(command_form(user_id="")).encode(), FORM, "command:/ask"),
    ("command with a 200-character user", urlencode(command_form(user_id="U" * 200)).encode(), FORM, "command:/ask"),
    ("block_actions without actions", block_actions(), FORM, "block_actions"),
    ("block_actions nobody listens to", block_actions(actions=[{"action_id": "x"}]), FORM, "block_actions"),
    ("JSON that is not JSON", b'{"type": "event_callback", "event": ', "application/json", "not valid JSON"),
    ("a form whose payload is not JSON", b"payload=%7Bnot-json", FORM, "not valid JSON"),
    ("JSON that is not an object", b"[1, 2, 3]", "application/json", "malformed"),
    ("a body that is not UTF-8", b"command=/ask&text=\xff\xfe", FORM, "not UTF-8"),
    ("JSON nested too deeply", b"[" * 200_000 + b"]" * 200_000, "application/json", "nested too deeply"),
    ("an empty object", b"{}", "application/json", "not handled"),
]


@pytest.mark.parametrize(
    ("what", "body", "content_type", "said"), MALFORMED_BODIES, ids=[case[0] for case in MALFORMED_BODIES]
)
async def test_a_signed_malformed_request_is_acked_with_one_warning_and_nothing_stored(
    runtime: Runtime, slack_http: SlackEvents, logs: Logs, what: str, body: bytes, content_type: str, said: str
) -> None:
    response = await slack_http.post(body, content_type)
    assert response.status_code == 200, what
    [warning] = logs.warnings()
    assert said in warning
    logs.assert_no_traceback()
    assert await rows_written(runtime) == {}


# -- still taken -------------------------------------------------------------------------------------------------


async def test_a_well_formed_signed_mention_is_still_acked_and_stored(
    runtime: Runtime, slack_http: SlackEvents, logs: Logs
) -> None:
    event = mention("Are you still listening?", thread_ts="1690000000.000001")
    response = await slack_http.event(event)
    assert response.status_code == 200
    [stored] = await stored_messages(runtime)
    assert (stored.text, stored.platform_message_id) == ("Are you still listening?", event["ts"])
    assert logs.warnings() == []


async def test_a_well_formed_file_share_is_still_stored_with_its_file(
    runtime: Runtime, slack_http: SlackEvents, logs: Logs
) -> None:
    response = await slack_http.event(dm(subtype="file_share", files=[good_file()]))
    assert response.status_code == 200
    [stored] = await stored_messages(runtime)
    assert stored.files is not None
    assert [(f["file_id"], f["size"]) for f in stored.files] == [("F0NOTES01", 12)]
    assert logs.warnings() == []


async def test_a_signed_mention_with_a_bogus_charset_is_read_as_utf8_and_stored(
    runtime: Runtime, slack_http: SlackEvents, logs: Logs
) -> None:
    body = json.dumps(event_body(mention("Grüße aus Köln")), ensure_ascii=False).encode()
    response = await slack_http.post(body, "application/json; charset=no-such-charset")
    assert response.status_code == 200
    [stored] = await stored_messages(runtime)
    assert stored.text == "Grüße aus Köln"
    assert logs.warnings() == []
