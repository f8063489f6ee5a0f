"""PII redaction (REDACT_PII): personal data replaced with placeholders before text leaves for the model.

Patterns, not a classifier: what they catch is caught every time and nothing is sent to learn what is personal.
Card numbers must pass the Luhn check and IBANs their mod-97 check, so order and invoice numbers stay as they are.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
# 13-19 digits, in groups separated by spaces or dashes.
_CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b")
_SSN = re.compile(r"(?<!\d)(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?!\d)")
# An international number (+ and 8-15 digits) or a North American one written with separators.
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}"
    r"|\(?\b\d{3}\)?[ .-]\d{3}[ .-]\d{4})(?!\d)"
)
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
# Candidates with at least two colons (compressed forms included); `ipaddress` decides (12:30:45 is no address).
_IPV6 = re.compile(r"(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _card(match: re.Match[str]) -> str | None:
    digits = re.sub(r"\D", "", match.group())
    return "[card number]" if 13 <= len(digits) <= 19 and _luhn(digits) else None


def _iban(match: re.Match[str]) -> str | None:
    compact = match.group().replace(" ", "")
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return "[IBAN]" if 15 <= len(compact) <= 34 and int(number) % 97 == 1 else None


def _ip(match: re.Match[str]) -> str | None:
    try:
        ipaddress.ip_address(match.group())
    except ValueError:
        return None
    return "[IP address]"


def _fixed(label: str) -> Callable[[re.Match[str]], str | None]:
    return lambda _match: label


# In this order: an IBAN or a card number holds runs of digits the phone pattern would take first.
_RULES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str | None]], ...] = (
    (_EMAIL, _fixed("[email]")),
    (_IBAN, _iban),
    (_CARD, _card),
    (_SSN, _fixed("[SSN]")),
    (_IPV4, _ip),
    (_IPV6, _ip),
    (_PHONE, _fixed("[phone]")),
)


def redact(text: str) -> str:
    """`text` with each piece of personal data it recognises replaced by a placeholder naming what it was."""
    for pattern, replace in _RULES:
        text = _apply(pattern, replace, text)
    return text


def _apply(pattern: re.Pattern[str], replace: Callable[[re.Match[str]], str | None], text: str) -> str:
    return pattern.sub(lambda match: replace(match) or match.group(), text)
