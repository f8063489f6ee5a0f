from __future__ import annotations

import time

from webconsole.auth import SESSION_TTL_S, Access


def test_a_session_is_signed_by_the_token_and_expires() -> None:
    access = Access("token-a")
    cookie = access.issue()
    session = access.session(cookie)
    assert session is not None
    assert access.csrf_ok(session, session.csrf)
    assert not access.csrf_ok(session, "")
    assert not access.csrf_ok(session, session.csrf[:-1] + "0")
    # Another console's token, an edited expiry, a week later: no session.
    assert Access("token-b").session(cookie) is None
    session_id, expires, signature = cookie.split(".")
    assert access.session(f"{session_id}.{int(expires) + 999}.{signature}") is None
    assert access.session(cookie, now=time.time() + SESSION_TTL_S + 1) is None
    assert access.session("garbage") is None


def test_each_session_has_its_own_csrf_token() -> None:
    access = Access("token-a")
    first, second = access.session(access.issue()), access.session(access.issue())
    assert first is not None
    assert second is not None
    assert first.csrf != second.csrf
    assert not access.csrf_ok(second, first.csrf)
