"""An `OutgoingEmail` as a MIME message (multipart/alternative: the plain-text part first, then the HTML), and the
Message-ID a delivery derives from its key."""

from __future__ import annotations

import hashlib
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

from bot.ports import OutgoingEmail

KEY_HEADER = "X-Threadbot-Delivery"


def message_id_for(key: str, sender: str) -> str:
    """The same Message-ID for every attempt at one delivery (run, step, recipient), on the sender's domain."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "threadbot.invalid"
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


def to_mime(email: OutgoingEmail) -> EmailMessage:
    message = EmailMessage()
    name, address = parseaddr(email.sender)
    message["From"] = str(Address(display_name=name, addr_spec=address)) if name else address
    message["To"] = email.to
    message["Subject"] = email.subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = email.message_id
    message[KEY_HEADER] = email.idempotency_key
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    return message


def envelope_sender(sender: str) -> str:
    return parseaddr(sender)[1]
