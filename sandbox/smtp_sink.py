"""A local SMTP server (aiosmtpd) that accepts mail and keeps it: each message as an .eml file in a folder (the
embedded default's DATA_DIR/mail, read by `bot mail list|show`) and in memory for tests. Tests can make it refuse
recipients, answer 4xx for a while, require a login and TLS (STARTTLS or from the start), or hold its answer to
DATA (to kill a worker mid-send)."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import ssl
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

__all__ = ["ReceivedMail", "SmtpSink", "read_mail"]


@dataclass(frozen=True, slots=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    path: Path | None

    @property
    def message(self) -> EmailMessage:
        return read_mail(self.data)

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"] or "")


def read_mail(data: bytes) -> EmailMessage:
    message: EmailMessage = message_from_bytes(data, policy=policy.default)
    return message


@dataclass
class _Script:
    refuse: dict[str, str] = field(default_factory=dict)  # address -> "550 ..." answer to its RCPT
    busy_rcpt: int = 0  # answer "451" to this many RCPTs first
    hold_data: asyncio.Event | None = None  # store the message, then wait for this before answering DATA


class SmtpSink:
    """`async with SmtpSink(folder) as sink:` serves SMTP on 127.0.0.1:`sink.port` in this event loop."""

    def __init__(
        self,
        folder: Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        login: tuple[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
        tls_mode: Literal["starttls", "tls"] = "starttls",
    ) -> None:
        self.folder = folder
        self.host = host
        self.port = port
        self.login = login
        self.tls = tls
        self.tls_mode = tls_mode
        self.received: list[ReceivedMail] = []
        self.script = _Script()
        self.data_started = asyncio.Event()
        self._server: asyncio.Server | None = None

    # -- test controls -------------------------------------------------------------------------------------------

    def refuse(self, address: str, answer: str = "550 5.1.1 No such user here") -> None:
        self.script.refuse[address.lower()] = answer

    def busy(self, rcpts: int) -> None:
        self.script.busy_rcpt = rcpts

    def hold_data(self) -> asyncio.Event:
        """From now on a message is kept, then DATA goes unanswered until the returned event is set."""
        self.script.hold_data = asyncio.Event()
        return self.script.hold_data

    # -- aiosmtpd handler hooks ----------------------------------------------------------------------------------

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if self.script.busy_rcpt > 0:
            self.script.busy_rcpt -= 1
            return "451 4.3.0 Try again later"
        answer = self.script.refuse.get(address.lower())
        if answer is not None:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = bytes(envelope.original_content or envelope.content or b"")  # type: ignore[arg-type]
        path = self._keep(data)
        self.received.append(ReceivedMail(str(envelope.mail_from), tuple(envelope.rcpt_tos), data, path))
        self.data_started.set()
        if self.script.hold_data is not None:
            await self.script.hold_data.wait()
        return "250 OK: queued"

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> Any:
        ok = isinstance(data, LoginPassword) and self.login == (data.login.decode(), data.password.decode())
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    def _keep(self, data: bytes) -> Path | None:
        if self.folder is None:
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        name = f"{stamp}-{hashlib.sha256(data).hexdigest()[:6]}{secrets.token_hex(1)}.eml"
        partial = self.folder / f".{name}.part"
        partial.write_bytes(data)
        partial.rename(self.folder / name)  # `bot mail list` never sees half a message
        return self.folder / name

    # -- lifecycle -----------------------------------------------------------------------------------------------

    def _protocol(self) -> SMTP:
        options: dict[str, Any] = {"hostname": "threadbot-sink", "ident": "threadbot mail sink"}
        if self.login is not None:
            # aiosmtpd only knows the TLS it started itself (STARTTLS): over TLS from the start it must not ask again.
            required = self.tls is not None and self.tls_mode == "starttls"
            options.update(auth_required=True, auth_require_tls=required, authenticator=self._authenticate)
        if self.tls is not None and self.tls_mode == "starttls":
            options.update(tls_context=self.tls, require_starttls=True)
        with warnings.catch_warnings():
            # "Requiring AUTH while not requiring TLS": aiosmtpd cannot see TLS it did not start itself (TLS from the
            # start); a login over plain loopback is a test's own choice.
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS", UserWarning)
            return SMTP(self, **options)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        implicit = self.tls if self.tls_mode == "tls" else None
        self._server = await loop.create_server(self._protocol, self.host, self.port, ssl=implicit)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            if self.script.hold_data is not None:
                self.script.hold_data.set()
            server.close()
            await server.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
