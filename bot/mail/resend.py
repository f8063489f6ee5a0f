"""The `Mailer` port over Resend's HTTP API (`POST /emails`), at RESEND_BASE_URL, with the delivery's key as the
Idempotency-Key header: Resend answers a repeated key with the first send's id, so a retry never sends twice."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

import httpx

from bot.errors import PermanentUpstreamError, TransientUpstreamError
from bot.mail.compose import KEY_HEADER
from bot.media.transcribe import retry_after_s
from bot.ports import OutgoingEmail

SERVICE = "resend"
NOT_CONFIGURED = "Email is not configured correctly; an operator has been told."


class ResendMailer:
    name = "resend"
    dedupes = True

    def __init__(self, api_key: str, base_url: str = "https://api.resend.com", *, timeout_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout_s, headers={"Authorization": f"Bearer {api_key}"}
        )

    def __repr__(self) -> str:
        return f"ResendMailer(base_url={self.base_url!r})"

    async def send(self, email: OutgoingEmail) -> str:
        body = {
            "from": email.sender,
            "to": [email.to],
            "subject": email.subject,
            "text": email.text,
            "html": email.html,
            "headers": {"Message-ID": email.message_id, KEY_HEADER: email.idempotency_key},
        }
        try:
            response = await self._http.post(
                "/emails", json=body, headers={"Idempotency-Key": email.idempotency_key[:256]}
            )
        except httpx.TransportError as exc:
            # Safe to retry whatever happened: the same key cannot send a second email.
            raise TransientUpstreamError(SERVICE, f"{type(exc).__name__}: {exc}") from exc
        if response.status_code == 200:
            return str(response.json().get("id", ""))
        raise _error(response, email.to)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def _error(response: httpx.Response, to: str) -> TransientUpstreamError | PermanentUpstreamError:
    try:
        payload: Any = response.json()
    except ValueError:
        payload = {}
    name = str(payload.get("name", "")) if isinstance(payload, dict) else ""
    message = str(payload.get("message", "")) if isinstance(payload, dict) else ""
    status = response.status_code
    detail = f"HTTP {status} {name}: {message}".strip()
    # 409 concurrent_idempotent_requests: the same key is still being sent; the retry gets its answer.
    if name == "invalid_idempotent_request":
        return PermanentUpstreamError(SERVICE, detail, f"Resend refused the email to {to}: {message}")
    if status in (408, 409, 429) or status >= 500:
        return TransientUpstreamError(SERVICE, detail, retry_after_s=retry_after_s(response.headers))
    if status in (401, 403):
        return PermanentUpstreamError(SERVICE, detail, NOT_CONFIGURED)
    said = " ".join(message.split())[:300] or f"HTTP {status}"
    return PermanentUpstreamError(SERVICE, detail, f"Resend refused the email to {to}: {said}")
