"""Markdown from the model -> Slack mrkdwn."""

from __future__ import annotations

import pytest

from adapters.slack.mrkdwn import to_mrkdwn


@pytest.mark.parametrize(
    ("markdown", "mrkdwn"),
    [
        ("**bold** and __bold__", "*bold* and *bold*"),
        ("*italic* and _italic_", "_italic_ and _italic_"),
        ("~~gone~~", "~gone~"),
        ("# Title\n## Sub", "*Title*\n*Sub*"),
        ("- one\n* two\n  + nested\n1. first", "• one\n• two\n  • nested\n1. first"),
        ("[docs](https://example.com/a?b=1&c=2)", "<https://example.com/a?b=1&amp;c=2|docs>"),
        ("a < b & c > d", "a &lt; b &amp; c &gt; d"),
        ("2 * 3 * 4", "2 * 3 * 4"),
        ("snake_case_name", "snake_case_name"),
    ],
)
def test_prose(markdown: str, mrkdwn: str) -> None:
    assert to_mrkdwn(markdown) == mrkdwn


def test_code_is_kept_verbatim_apart_from_escaping() -> None:
    markdown = "Run `make **all**` then:\n```python\nif a < b:\n    print('**x**')\n```\nDone **now**."
    assert to_mrkdwn(markdown) == ("Run `make **all**` then:\n```\nif a &lt; b:\n    print('**x**')\n```\nDone *now*.")


def test_user_mentions_survive_but_broadcasts_do_not() -> None:
    assert to_mrkdwn("⏰ Reminder for <@U0ADA0001>: **stretch**") == "⏰ Reminder for <@U0ADA0001>: *stretch*"
    assert to_mrkdwn("hey <!channel> and <!here>") == "hey &lt;!channel&gt; and &lt;!here&gt;"
    assert to_mrkdwn("`<@U0ADA0001>` in code") == "`&lt;@U0ADA0001&gt;` in code"
