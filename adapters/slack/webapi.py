"""Calling the Slack Web API: one client per token on SLACK_API_URL, 429s waited out, errors put into `bot.errors`."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable

import aiohttp
import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.errors import PermanentUpstreamError, TransientUpstreamError
from bot.metrics import RATE_LIMITED

log = structlog.get_logger(__name__)

SERVICE = "slack"
ATTEMPTS = 4
# A Retry-After longer than this is not slept through inside one call: the step fails as transient and the
# job's own retry policy (which persists across crashes) waits instead of a coroutine holding a worker slot.
MAX_RETRY_AFTER_S = 60.0
# Errors Slack documents as "try again" rather than "you did something wrong".
_TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


class SlackRefused(PermanentUpstreamError):
    """Slack answered `ok: false` with an error that retrying will not fix; `error` is Slack's code."""

    def __init__(self, method: str, error: str) -> None:
        super().__init__(SERVICE, f"{method}: {error}", f"Slack refused my message ({error}).")
        self.error = error


# workspace id -> bot token: a fixed token (single workspace) or the workspace's OAuth installation.
TokenSource = Callable[[str], Awaitable[str]]


def fixed_token(token: str) -> TokenSource:
    async def token_for(workspace_id: str) -> str:
        return token

    return token_for


def web_client(token: str | None, base_url: str, session: aiohttp.ClientSession | None = None) -> AsyncWebClient:
    """Without `session` slack_sdk opens a connection per call; a worker passes one to reuse connections."""
    # slack_sdk joins method names onto base_url, which therefore needs its trailing slash.
    return AsyncWebClient(token=token, base_url=base_url if base_url.endswith("/") else base_url + "/", session=session)


def retry_after_s(exc: SlackApiError) -> float:
    headers = {k.lower(): v for k, v in (exc.response.headers or {}).items()}
    value = headers.get("retry-after", "1")
    try:
        return max(0.0, float(value if isinstance(value, str) else value[0]))
    except (TypeError, ValueError, IndexError):
        return 1.0


async def call(
    method: str,
    send: Callable[[], Awaitable[AsyncSlackResponse]],
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    idempotent: bool = True,
) -> AsyncSlackResponse:
    """Run one Web API call. A 429 is waited out (Retry-After) and retried; 5xx and network errors are retried
    with a short backoff; what persists becomes `TransientUpstreamError`, a refusal `SlackRefused`.

    A call that creates something (`idempotent=False`: a post, a stream's start) is not retried here after a 5xx
    or a network error, since Slack may have acted on it: the error goes up at once, and the workflow step's retry
    asks the platform to look for the message first (`recovering`). A 429 is always safe to retry."""
    for attempt in range(1, ATTEMPTS + 1):
        last = attempt == ATTEMPTS
        try:
            return await send()
        except SlackApiError as exc:
            status = exc.response.status_code
            error = str(exc.response.get("error", "")) or f"http_{status}"
            if status == 429 or error == "ratelimited":
                RATE_LIMITED.labels("slack").inc()
                wait = retry_after_s(exc)
                if last or wait > MAX_RETRY_AFTER_S:
                    raise TransientUpstreamError(SERVICE, f"{method}: rate limited", retry_after_s=wait) from None
                log.info("slack rate limited; waiting", method=method, retry_after_s=wait, attempt=attempt)
                await sleep(wait)
            elif status >= 500 or error in _TRANSIENT_ERRORS:
                if last or not idempotent:
                    raise TransientUpstreamError(SERVICE, f"{method}: {error}") from None
                await sleep(0.5 * 2**attempt)
            else:
                raise SlackRefused(method, error) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            if last or not idempotent:
                raise TransientUpstreamError(SERVICE, f"{method}: {type(exc).__name__}") from None
            await sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")


async def send_upload(
    url: str,
    content: bytes,
    session: aiohttp.ClientSession | None = None,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Step two of an upload: POST the bytes to the URL files.getUploadURLExternal handed out. The URL is its own
    credential (no token is sent), and sending to it again replaces the bytes, so 5xx and network errors are
    retried here as for an idempotent call."""
    if session is None:
        async with aiohttp.ClientSession() as own:
            return await send_upload(url, content, own, sleep=sleep)
    for attempt in range(1, ATTEMPTS + 1):
        last = attempt == ATTEMPTS
        try:
            # A stream, not raw bytes: aiohttp writes it in chunks instead of holding the event loop for a large file.
            async with session.post(url, data=io.BytesIO(content)) as response:
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            if last:
                raise TransientUpstreamError(SERVICE, f"file upload: {type(exc).__name__}") from None
            await sleep(0.5 * 2**attempt)
            continue
        if status == 200:
            return
        if status < 500 and status != 429:
            raise PermanentUpstreamError(SERVICE, f"file upload: HTTP {status}", "Slack refused my file upload.")
        if last:
            raise TransientUpstreamError(SERVICE, f"file upload: HTTP {status}")
        await sleep(0.5 * 2**attempt)
