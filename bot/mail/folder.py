"""Where the embedded default's mail sink keeps every message it accepts, and reading them back (`bot mail`)."""

from __future__ import annotations

from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from bot.config import Settings


def mail_folder(settings: Settings) -> Path:
    return settings.data_dir / "mail"


@dataclass(frozen=True, slots=True)
class KeptMail:
    id: str  # the file's name without .eml: its time of arrival, then a few letters
    path: Path
    message: EmailMessage

    @property
    def text(self) -> str:
        part = self.message.get_body(("plain",))
        return part.get_content() if part is not None else ""

    @property
    def html(self) -> str:
        part = self.message.get_body(("html",))
        return part.get_content() if part is not None else ""


def read_kept(path: Path) -> KeptMail:
    message: EmailMessage = message_from_bytes(path.read_bytes(), policy=policy.default)
    return KeptMail(path.stem, path, message)


def kept_mail(settings: Settings) -> list[KeptMail]:
    """Every mail in the sink's folder, oldest first."""
    folder = mail_folder(settings)
    return [read_kept(path) for path in sorted(folder.glob("*.eml"))] if folder.is_dir() else []
