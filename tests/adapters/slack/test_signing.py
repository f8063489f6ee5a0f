"""Slack's signature scheme on raw bytes: what Slack signs passes, anything else gets a reason."""

from __future__ import annotations

import pytest

from adapters.slack.signing import refusal
from tests.adapters.slack.conftest import SIGNING_SECRET, sign

NOW = 1_700_000_000
BODY = b'{"type": "event_callback", "text": "caf\xc3\xa9"}'


def test_a_body_signed_as_slack_signs_it_passes_within_five_minutes() -> None:
    for age in (0, 299, -299):
        assert refusal(SIGNING_SECRET, str(NOW - age), sign(BODY, NOW - age), BODY, now=NOW) is None


@pytest.mark.parametrize(
    ("timestamp", "signature", "body", "reason"),
    [
        (None, sign(BODY, NOW), BODY, "unsigned"),
        (str(NOW), None, BODY, "unsigned"),
        ("soon", sign(BODY, NOW), BODY, "timestamp is not a number"),
        (f"+{NOW}", sign(BODY, NOW), BODY, "timestamp is not a number"),
        (" 1700000000", sign(BODY, NOW), BODY, "timestamp is not a number"),
        ("9" * 400, sign(BODY, NOW), BODY, "timestamp is not a number"),
        (str(NOW - 301), sign(BODY, NOW - 301), BODY, "timestamp is stale"),
        (str(NOW), sign(BODY, NOW, "another-secret"), BODY, "signature mismatch"),
        (str(NOW), sign(BODY + b" ", NOW), BODY, "signature mismatch"),
        (str(NOW), "v0=café", BODY, "signature mismatch"),
    ],
)
def test_anything_else_is_refused_with_a_short_reason(
    timestamp: str | None, signature: str | None, body: bytes, reason: str
) -> None:
    assert refusal(SIGNING_SECRET, timestamp, signature, body, now=NOW) == reason
