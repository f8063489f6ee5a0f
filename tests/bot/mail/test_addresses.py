from __future__ import annotations

import pytest

from bot.mail.addresses import addresses_in, domain_allowed, is_address, normalise


@pytest.mark.parametrize("text", ["dana@acme.test", "d.o'brien+call@mail.acme.co.uk", "x@a-b.io"])
def test_addresses(text: str) -> None:
    assert is_address(text)


@pytest.mark.parametrize("text", ["dana@acme", "@acme.test", "dana@", "da na@acme.test", "dana@acme..test", "a@-x.io"])
def test_not_addresses(text: str) -> None:
    assert not is_address(text)


def test_the_addresses_written_in_a_chain_input_including_slacks_mailto_links() -> None:
    text = "to <mailto:dana@acme.test|dana@acme.test>, (lee@acme.test) and <@U123> cc: bad@ dana@acme.test."
    assert addresses_in(text) == ["dana@acme.test", "lee@acme.test", "bad@"]


def test_allowed_domains_include_their_subdomains_and_ignore_case() -> None:
    assert domain_allowed("a@Mail.Acme.test", {"acme.test"})
    assert not domain_allowed("a@notacme.test", {"acme.test"})
    assert domain_allowed("a@anything.io", set())
    assert normalise(" Ada@Example.COM ") == "Ada@example.com"
