"""A chain's `deliver:` section as the loader checks it: templates see every step and `reply`, mistakes name the
field and suggest the right name."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from bot.chains.library import load_library
from bot.chains.spec import ChainInvalid, parse_chain
from bot.config import Settings

BASE = """
name: mailed
description: Mailed.
version: 1
steps:
  - id: notes
    prompt: "Notes"
reply: "{{ steps.notes }}"
"""


def chain_with(deliver: str) -> Any:
    return parse_chain(yaml.safe_load(BASE + deliver))


def test_a_deliver_section_with_defaults() -> None:
    chain = chain_with("deliver:\n  email:\n    to: {prefs: true}\n    subject: 'Notes: {{ steps.notes[:20] }}'\n")
    email = chain.deliver.email
    assert email is not None
    assert email.to.prefs
    assert not email.to.input
    assert email.text == "{{ reply }}"
    assert not email.confirm
    assert chain_with("").deliver.email is None


@pytest.mark.parametrize(
    ("deliver", "problem"),
    [
        ("deliver:\n  email:\n    to: {}\n    subject: '{{ stpes.notes }}'\n",
         "deliver.email.subject: unknown variable 'stpes'"),
        ("deliver:\n  email:\n    to: {}\n    subject: x\n    html: '{{ steps.summary }}'\n",
         "deliver.email.html: unknown step 'steps.summary'"),
        ("deliver:\n  email:\n    to: {prefs: true, adresses: [a@b.co]}\n    subject: x\n",
         "deliver.email.to.adresses: unknown field; did you mean 'addresses'?"),
        ("deliver:\n  email:\n    to: {}\n", "deliver.email.subject: missing (required)"),
        ("deliver:\n  mail: {}\n", "deliver.mail: unknown field"),
    ],
)  # fmt: skip
def test_mistakes_in_deliver_are_named(deliver: str, problem: str) -> None:
    with pytest.raises(ChainInvalid) as invalid:
        chain_with(deliver)
    described = [p.describe() for p in invalid.value.problems]
    assert any(d.startswith(problem) for d in described), described


def test_the_shipped_followup_email_asks_before_sending() -> None:
    chain = load_library(Settings(_env_file=None)).require("followup-email")
    assert chain.deliver.email is not None
    assert chain.deliver.email.confirm
    assert chain.deliver.email.to.input
