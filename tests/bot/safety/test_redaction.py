"""What REDACT_PII replaces, and what it must leave alone."""

from __future__ import annotations

import pytest

from bot.safety.redaction import redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail jane.doe+ops@example.co.uk today", "mail [email] today"),
        ("card 4111 1111 1111 1111 please", "card [card number] please"),
        ("card 4111-1111-1111-1111", "card [card number]"),
        ("IBAN DE89 3704 0044 0532 0130 00.", "IBAN [IBAN]."),
        ("GB82WEST12345698765432", "[IBAN]"),
        ("ssn 123-45-6789", "ssn [SSN]"),
        ("call +44 20 7946 0958 or (555) 123-4567", "call [phone] or [phone]"),
        ("from 10.0.0.12 and 2001:db8::1", "from [IP address] and [IP address]"),
    ],
)
def test_personal_data_is_replaced_by_what_it_was(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "order 1234 5678 9012 3456 shipped",  # fails the Luhn check: not a card
        "DE00 1234 5678 9012 3456 78",  # fails the IBAN check
        "version 1.2.3 at 12:30:45 on 2026-12-06, ticket #4521",
        "999.1.1.1 is no address, nor is a::b::c",
        "the answer is 42 and pi is 3.14159",
    ],
)
def test_ordinary_numbers_and_times_stay(text: str) -> None:
    assert redact(text) == text
