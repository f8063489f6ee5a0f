"""The `Mailer` port over SMTP (aiosmtplib): STARTTLS, TLS from the start, or plain (the local sink), with optional
authentication. One connection per message: deliveries are rare, and a fresh one never carries a broken state."""

from __future__ import annotations

import ssl
from typing import Literal

import aiosmtplib

from bot.errors import MailMaybeSent, PermanentUpstreamError, TransientUpstreamError
from bot.mail.compose import envelope_sender, to_mime
from bot.ports import OutgoingEmail

SERVICE = "smtp"
NOT_CONFIGURED = "Email is not configured correctly; an operator has been told."


class SmtpMailer:
    name = "smtp"
    dedupes = False

    def __init__(
        self,
        host: str,
        port: int,
        *,
        security: Literal["starttls", "tls", "none"] = "starttls",
        username: str = "",
        password: str = "",
        timeout_s: float = 30.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.security = security
        self._username = username or None
        self._password = password or None
        self.timeout_s = timeout_s
        self._tls_context = tls_context  # None: the system's trusted CAs (a test passes its own)

    def __repr__(self) -> str:
        return f"SmtpMailer(host={self.host!r}, port={self.port}, security={self.security!r})"

    async def send(self, email: OutgoingEmail) -> str:
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            use_tls=self.security == "tls",
            start_tls=self.security == "starttls",
            username=self._username,
            password=self._password,
            timeout=self.timeout_s,
            tls_context=self._tls_context,
        )
        try:
            await self._connect(client)
            await self._envelope(client, email)
            await self._data(client, email)
        finally:
            if client.is_connected:
                try:
                    await client.quit()
                except aiosmtplib.SMTPException:
                    client.close()
        return email.message_id

    async def _connect(self, client: aiosmtplib.SMTP) -> None:
        try:
            await client.connect()  # greeting, EHLO, STARTTLS and login, as configured
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise PermanentUpstreamError(SERVICE, f"login refused: {exc.code} {exc.message}", NOT_CONFIGURED) from exc
        except aiosmtplib.SMTPNotSupported as exc:
            raise PermanentUpstreamError(SERVICE, f"{self.host}: {exc}", NOT_CONFIGURED) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise _refusal(exc, "the mail server refused the connection") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise TransientUpstreamError(SERVICE, f"{self.host}:{self.port}: {type(exc).__name__}: {exc}") from exc

    async def _envelope(self, client: aiosmtplib.SMTP, email: OutgoingEmail) -> None:
        try:
            await client.mail(envelope_sender(email.sender))
            await client.rcpt(email.to)
        except aiosmtplib.SMTPRecipientRefused as exc:
            raise _refusal(exc, f"the mail server refused {email.to}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise _refusal(exc, "the mail server refused the sender") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise TransientUpstreamError(SERVICE, f"before DATA: {type(exc).__name__}: {exc}") from exc

    async def _data(self, client: aiosmtplib.SMTP, email: OutgoingEmail) -> None:
        try:
            await client.data(to_mime(email).as_bytes())
        except aiosmtplib.SMTPResponseException as exc:
            # An answer to DATA: the server did not take the message (4xx: try later; 5xx: it never will).
            raise _refusal(exc, f"the mail server refused the message to {email.to}") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            # No answer to the message we handed over: it may have been accepted.
            raise MailMaybeSent(SERVICE, f"during DATA: {type(exc).__name__}: {exc}") from exc


def _refusal(exc: aiosmtplib.SMTPResponseException, what: str) -> TransientUpstreamError | PermanentUpstreamError:
    detail = f"{exc.code} {exc.message}"
    if 400 <= exc.code < 500:
        return TransientUpstreamError(SERVICE, f"{what}: {detail}")
    return PermanentUpstreamError(SERVICE, f"{what}: {detail}", f"{what}: {' '.join(exc.message.split())[:300]}")
