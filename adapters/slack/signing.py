"""Slack's request signatures, checked on the raw bytes before anything parses them: a forged request costs one
HMAC whatever its body holds, and a flood of them costs the log one line every ten seconds."""

from __future__ import annotations

import hashlib
import hmac
import math

import structlog

from bot.clock import Clock

log = structlog.get_logger(__name__)

# Slack's rule: a request signed more than five minutes from now may be a replay.
MAX_AGE_S = 5 * 60
REFUSAL_LOG_EVERY_S = 10.0


def refusal(secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float) -> str | None:
    """Why the request is not Slack's, as a short reason for the log, or None if it is: `X-Slack-Signature` is
    `v0=` and the hex HMAC-SHA256 of `v0:{X-Slack-Request-Timestamp}:{body}` under the signing secret, and the
    timestamp (whole seconds) is within five minutes of `now`."""
    if not timestamp or not signature:
        return "unsigned"
    # int() alone would also take " 12", "+12", "1_2" and other scripts' digits: Slack sends ASCII digits.
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        return "timestamp is not a number"
    if abs(now - int(timestamp)) > MAX_AGE_S:
        return "timestamp is stale"
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = b"v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest().encode()
    # compare_digest takes str of ASCII only; a header with anything else is no signature of ours anyway.
    if not signature.isascii() or not hmac.compare_digest(expected, signature.encode()):
        return "signature mismatch"
    return None


class RefusalLog:
    """A warning for a refused request at most once per `every_s`, with the number refused since the last one that
    had no line of their own."""

    def __init__(self, clock: Clock, every_s: float = REFUSAL_LOG_EVERY_S) -> None:
        self._clock = clock
        self._every_s = every_s
        self._next_at = -math.inf
        self._suppressed = 0

    def refused(self, reason: str) -> None:
        now = self._clock.monotonic()
        if now < self._next_at:
            self._suppressed += 1
            return
        log.warning("slack request refused", status=401, reason=reason, suppressed=self._suppressed)
        self._suppressed = 0
        self._next_at = now + self._every_s
