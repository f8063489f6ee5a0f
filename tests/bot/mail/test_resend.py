"""The Resend transport against the local stand-in of its API (sandbox.resend_server): the Idempotency-Key header
makes a repeated send harmless, and each error answer lands in our error tree."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.errors import PermanentUpstreamError, TransientUpstreamError
from bot.mail.resend import NOT_CONFIGURED, ResendMailer
from sandbox.resend_server import StandInResend
from tests.bot.mail.test_smtp import email_to


@pytest.fixture
async def resend() -> AsyncIterator[StandInResend]:
    async with StandInResend(api_key="re_test") as server:
        yield server


async def test_the_same_key_sends_one_email_and_answers_with_its_id(resend: StandInResend) -> None:
    async with ResendMailer("re_test", resend.base_url) as mailer:
        first = await mailer.send(email_to("dana@acme.test"))
        again = await mailer.send(email_to("dana@acme.test"))
        other = await mailer.send(email_to("lee@acme.test"))
    assert first == again != other
    assert [r.idempotency_key for r in resend.requests] == [
        "7:deliver:email:dana@acme.test", "7:deliver:email:dana@acme.test", "7:deliver:email:lee@acme.test",
    ]  # fmt: skip
    assert len(resend.sent) == 2
    body = resend.sent[0]
    assert body["from"] == "Threadbot <bot@example.com>"
    assert body["to"] == ["dana@acme.test"]
    assert body["text"] == "Plain notes."
    assert body["html"] == "<p>Notes.</p>"
    assert body["headers"]["Message-ID"] == email_to("dana@acme.test").message_id


async def test_errors_are_transient_or_said_to_the_user(resend: StandInResend) -> None:
    async with ResendMailer("re_test", resend.base_url) as mailer:
        resend.fail_next(1, status=503)
        with pytest.raises(TransientUpstreamError):
            await mailer.send(email_to("dana@acme.test"))
        resend.fail_next(1, status=429)
        with pytest.raises(TransientUpstreamError):
            await mailer.send(email_to("dana@acme.test"))
        resend.refuse("dana@acme.test", "Invalid `to` field. The domain is not verified.")
        with pytest.raises(PermanentUpstreamError) as refused:
            await mailer.send(email_to("dana@acme.test"))
        assert refused.value.user_message == (
            "Resend refused the email to dana@acme.test: Invalid `to` field. The domain is not verified."
        )
    assert resend.sent == []
    async with ResendMailer("wrong-key", resend.base_url) as stranger:
        with pytest.raises(PermanentUpstreamError) as unauthorised:
            await stranger.send(email_to("lee@acme.test"))
        assert unauthorised.value.user_message == NOT_CONFIGURED


async def test_nothing_listening_is_transient() -> None:
    async with StandInResend() as server:
        url = server.base_url
    async with ResendMailer("re_test", url, timeout_s=2) as mailer:
        with pytest.raises(TransientUpstreamError):
            await mailer.send(email_to("dana@acme.test"))
