"""The Resend stand-in speaks as Resend does where our client depends on it: bearer key, the idempotency rules."""

from __future__ import annotations

import httpx

from sandbox.resend_server import StandInResend

EMAIL = {"from": "bot@example.com", "to": ["dana@acme.test"], "subject": "Hi", "text": "Hello"}


async def test_idempotency_keys_and_keys() -> None:
    async with StandInResend(api_key="re_1") as server, httpx.AsyncClient(base_url=server.base_url) as http:
        auth = {"Authorization": "Bearer re_1", "Idempotency-Key": "k1"}
        first = await http.post("/emails", json=EMAIL, headers=auth)
        again = await http.post("/emails", json=EMAIL, headers=auth)
        assert first.status_code == again.status_code == 200
        assert first.json()["id"] == again.json()["id"]
        changed = await http.post("/emails", json={**EMAIL, "subject": "Other"}, headers=auth)
        assert changed.status_code == 409
        assert changed.json()["name"] == "invalid_idempotent_request"
        unkeyed = await http.post("/emails", json=EMAIL, headers={"Authorization": "Bearer re_1"})
        assert unkeyed.json()["id"] != first.json()["id"]
        stranger = await http.post("/emails", json=EMAIL, headers={"Authorization": "Bearer nope"})
        assert stranger.status_code == 401
        missing = await http.post("/emails", json={"from": "bot@example.com"}, headers={"Authorization": "Bearer re_1"})
        assert missing.status_code == 422
    assert len(server.sent) == 2
    assert [r.status for r in server.requests] == [200, 200, 409, 200, 401, 422]
