"""A local stand-in for Resend's email API (`POST /emails`): checks the bearer key, keeps each email, and honours
the Idempotency-Key header as Resend does (the same key and body: the first email's id again, nothing sent; the
same key with another body: 409). Tests can make it fail for a while or refuse an address."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from sandbox.serving import LocalServer

__all__ = ["ResendRequest", "StandInResend"]


@dataclass(frozen=True, slots=True)
class ResendRequest:
    status: int
    idempotency_key: str | None
    body: dict[str, Any]


@dataclass
class _Script:
    fail: list[int] = field(default_factory=list)  # statuses to answer with, one per request, first
    refuse: dict[str, str] = field(default_factory=dict)  # address -> validation message


class StandInResend(LocalServer):
    def __init__(self, api_key: str = "re_test", *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host=host, port=port)
        self.api_key = api_key
        self.requests: list[ResendRequest] = []
        self.sent: list[dict[str, Any]] = []  # emails actually "sent", each once
        self._keys: dict[str, tuple[str, str]] = {}  # idempotency key -> (body digest, email id)
        self._script = _Script()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.bound_port}"

    def fail_next(self, count: int, status: int = 503) -> None:
        self._script.fail += [status] * count

    def refuse(self, address: str, message: str) -> None:
        self._script.refuse[address.lower()] = message

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/emails", self._emails)
        return app

    async def _emails(self, request: web.Request) -> web.Response:
        key = request.headers.get("Idempotency-Key")
        try:
            body = await request.json()
        except json.JSONDecodeError:
            body = {}
        answer = self._answer(request, key, body if isinstance(body, dict) else {})
        self.requests.append(ResendRequest(answer.status, key, body if isinstance(body, dict) else {}))
        return answer

    def _answer(self, request: web.Request, key: str | None, body: dict[str, Any]) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(401, "missing_api_key", "Missing or invalid API key")
        if self._script.fail:
            status = self._script.fail.pop(0)
            return _error(status, "internal_server_error", "The stand-in was told to fail")
        to = body.get("to")
        if not isinstance(to, list) or not to or not body.get("from") or not body.get("subject"):
            return _error(422, "validation_error", "`from`, `to` and `subject` are required")
        for address in to:
            if str(address).lower() in self._script.refuse:
                return _error(422, "validation_error", self._script.refuse[str(address).lower()])
        digest = json.dumps(body, sort_keys=True)
        if key is not None and key in self._keys:
            seen, email_id = self._keys[key]
            if seen != digest:
                return _error(409, "invalid_idempotent_request", "Same idempotency key used with a different payload")
            return web.json_response({"id": email_id})
        email_id = secrets.token_hex(8)
        if key is not None:
            self._keys[key] = (digest, email_id)
        self.sent.append({"id": email_id, **body})
        return web.json_response({"id": email_id})


def _error(status: int, name: str, message: str) -> web.Response:
    return web.json_response({"statusCode": status, "name": name, "message": message}, status=status)
