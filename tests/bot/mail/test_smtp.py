"""The SMTP transport against a real local server (sandbox.smtp_sink): STARTTLS, TLS from the start, a login, and
each way a server can say no, in our error tree (transient: retried; permanent: said to the user)."""

from __future__ import annotations

import ssl
from typing import Literal

import pytest
import trustme

from bot.errors import PermanentUpstreamError, TransientUpstreamError
from bot.mail.compose import message_id_for
from bot.mail.smtp import NOT_CONFIGURED, SmtpMailer
from bot.ports import OutgoingEmail
from sandbox.smtp_sink import SmtpSink


def email_to(address: str) -> OutgoingEmail:
    key = f"7:deliver:email:{address}"
    return OutgoingEmail(
        sender="Threadbot <bot@example.com>", to=address, subject="Notes", text="Plain notes.",
        html="<p>Notes.</p>", message_id=message_id_for(key, "bot@example.com"), idempotency_key=key,
    )  # fmt: skip


@pytest.fixture
def certificates() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for 127.0.0.1 and a client context that trusts only its CA."""
    authority = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    authority.configure_trust(client)
    return server, client


@pytest.mark.parametrize("mode", ["starttls", "tls"])
async def test_tls_and_a_login(
    mode: Literal["starttls", "tls"], certificates: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server_tls, client_tls = certificates
    async with SmtpSink(login=("bot", "s3cret"), tls=server_tls, tls_mode=mode) as sink:
        mailer = SmtpMailer(
            "127.0.0.1",
            sink.port,
            security=mode,
            username="bot",
            password="s3cret",
            tls_context=client_tls,
        )
        sent_id = await mailer.send(email_to("dana@acme.test"))
        [mail] = sink.received
        assert mail.rcpt_tos == ("dana@acme.test",)
        assert mail.mail_from == "bot@example.com"
        assert mail.message_id == sent_id == email_to("dana@acme.test").message_id
        message = mail.message
        assert message["From"] == "Threadbot <bot@example.com>"
        assert message.get_content_type() == "multipart/alternative"
        assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]

        wrong = SmtpMailer(
            "127.0.0.1",
            sink.port,
            security=mode,
            username="bot",
            password="nope",
            tls_context=client_tls,
        )
        with pytest.raises(PermanentUpstreamError) as refused:
            await wrong.send(email_to("dana@acme.test"))
        assert refused.value.user_message == NOT_CONFIGURED
        assert len(sink.received) == 1


async def test_a_server_that_requires_starttls_refuses_a_plain_client(
    certificates: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    async with SmtpSink(tls=certificates[0]) as sink:
        with pytest.raises(PermanentUpstreamError) as refused:
            await SmtpMailer("127.0.0.1", sink.port, security="none").send(email_to("dana@acme.test"))
        assert "530" in refused.value.detail
        assert sink.received == []


async def test_refusals_are_permanent_and_busy_answers_transient() -> None:
    async with SmtpSink() as sink:
        mailer = SmtpMailer("127.0.0.1", sink.port, security="none")
        sink.refuse("gone@acme.test")
        with pytest.raises(PermanentUpstreamError) as refused:
            await mailer.send(email_to("gone@acme.test"))
        assert refused.value.user_message == "the mail server refused gone@acme.test: 5.1.1 No such user here"
        sink.busy(1)
        with pytest.raises(TransientUpstreamError):
            await mailer.send(email_to("dana@acme.test"))
        await mailer.send(email_to("dana@acme.test"))
        assert [mail.rcpt_tos for mail in sink.received] == [("dana@acme.test",)]


async def test_no_server_listening_is_transient() -> None:
    async with SmtpSink() as sink:
        port = sink.port
    with pytest.raises(TransientUpstreamError) as failed:
        await SmtpMailer("127.0.0.1", port, security="none", timeout_s=2).send(email_to("dana@acme.test"))
    assert failed.value.service == "smtp"
