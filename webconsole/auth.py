"""Who may see the console: one login token (WEB_ADMIN_TOKEN, or made at start), a signed session cookie (HttpOnly,
SameSite=Strict) and a CSRF token, derived from the session, that every POST must carry.

Sessions are signed rather than stored: nothing to keep, and a restart with the same token keeps people logged in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

SESSION_COOKIE = "threadbot_session"
LOGIN_CSRF_COOKIE = "threadbot_login_csrf"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
SESSION_TTL_S = 7 * 24 * 3600
# Reachable without a session: the login itself, the page assets, and what probes and scrapers read.
PUBLIC_PATHS = frozenset({"/login", "/healthz", "/readyz", "/metrics", "/favicon.ico"})
PUBLIC_PREFIXES = ("/static/",)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def new_token() -> str:
    return secrets.token_urlsafe(24)


@dataclass(frozen=True, slots=True)
class Session:
    session_id: str
    csrf: str


class Access:
    """Signs and checks sessions with a key derived from the login token."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("the web console needs a login token")
        self._token = token
        self._key = hashlib.sha256(b"threadbot-web-session:" + token.encode()).digest()

    def token_matches(self, candidate: str) -> bool:
        return hmac.compare_digest(candidate.encode(), self._token.encode())

    def _sign(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()

    def issue(self, now: float | None = None) -> str:
        """A new session cookie's value: `id.expiry.signature`."""
        expires = int((now if now is not None else time.time()) + SESSION_TTL_S)
        body = f"{secrets.token_hex(16)}.{expires}"
        return f"{body}.{self._sign(body)}"

    def session(self, cookie: str | None, now: float | None = None) -> Session | None:
        if not cookie or cookie.count(".") != 2:
            return None
        session_id, expires, signature = cookie.split(".")
        body = f"{session_id}.{expires}"
        if not hmac.compare_digest(signature, self._sign(body)):
            return None
        if not expires.isdigit() or int(expires) < (now if now is not None else time.time()):
            return None
        return Session(session_id, self._sign("csrf:" + session_id))

    def csrf_ok(self, session: Session, candidate: str | None) -> bool:
        return bool(candidate) and hmac.compare_digest(str(candidate), session.csrf)


ACCESS_KEY = web.AppKey("access", Access)
SESSION_KEY = web.RequestKey("session", Session)


def set_session_cookie(response: web.StreamResponse, value: str, *, secure: bool) -> None:
    response.set_cookie(
        SESSION_COOKIE, value, max_age=SESSION_TTL_S, httponly=True, samesite="Strict", secure=secure, path="/"
    )


def current_session(request: web.Request) -> Session:
    session: Session = request[SESSION_KEY]
    return session


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


async def _posted_csrf(request: web.Request) -> str | None:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        # Multipart bodies (uploads) carry the token in the header: reading the form here would consume the file.
        if request.content_type == "multipart/form-data":
            return None
        form = await request.post()
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


@web.middleware
async def require_login(request: web.Request, handler: Handler) -> web.StreamResponse:
    """No page and no data without a session; no POST without the session's CSRF token (403)."""
    if _is_public(request.path):
        return await handler(request)
    access = request.app[ACCESS_KEY]
    session = access.session(request.cookies.get(SESSION_COOKIE))
    if session is None:
        if request.method == "GET" and "text/html" in request.headers.get("Accept", ""):
            raise web.HTTPSeeOther(f"/login?next={request.path_qs}" if request.path != "/" else "/login")
        raise web.HTTPUnauthorized(text="Log in first: open the URL `bot up` printed.")
    if request.method not in ("GET", "HEAD", "OPTIONS") and not access.csrf_ok(session, await _posted_csrf(request)):
        raise web.HTTPForbidden(text="Missing or wrong CSRF token; reload the page and try again.")
    request[SESSION_KEY] = session
    return await handler(request)
