"""Email addresses: which text is one, which a chain's input names, and which EMAIL_ALLOWED_DOMAINS lets through."""

from __future__ import annotations

import re
from collections.abc import Iterable

# A practical check (RFC 5322's dot-atom local part, a dotted host name): what a person types as an address.
_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
ADDRESS_RE = re.compile(rf"^{_LOCAL}@{_LABEL}(?:\.{_LABEL})+$")
# Slack sends a typed address as <mailto:a@b.c|a@b.c>; a mention is <@U123>, which is no address.
_MAILTO_RE = re.compile(r"<mailto:[^|>]*\|([^>]*)>")
_TRIM = "<>()[]{},;:.\"'!?"


def is_address(text: str) -> bool:
    return len(text) <= 254 and ADDRESS_RE.fullmatch(text) is not None


def normalise(address: str) -> str:
    """The address as it is compared and sent: its domain in lower case (the local part is the server's)."""
    local, _, domain = address.strip().rpartition("@")
    return f"{local}@{domain.lower()}" if local else address.strip()


def addresses_in(text: str) -> list[str]:
    """Every word of `text` that looks meant as an address (it has an @), valid or not, in order, once each."""
    text = _MAILTO_RE.sub(r"\1", text)
    found: list[str] = []
    for word in text.split():
        if word.startswith("<@"):
            continue  # a platform mention
        word = word.strip(_TRIM).removeprefix("mailto:")
        if "@" in word and word not in found:
            found.append(word)
    return found


def domain_allowed(address: str, allowed: Iterable[str]) -> bool:
    """Whether `address` may receive mail under EMAIL_ALLOWED_DOMAINS (empty: any); a domain allows its subdomains."""
    domains = [domain.strip().lower().lstrip("@") for domain in allowed if domain.strip()]
    if not domains:
        return True
    host = address.rpartition("@")[2].lower()
    return any(host == domain or host.endswith("." + domain) for domain in domains)
