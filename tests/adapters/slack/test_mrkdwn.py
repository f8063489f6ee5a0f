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


@pytest.mark.parametrize(
    ("markdown", "mrkdwn"),
    [
        # the cases the hand-written converter got wrong
        ("***both***", "_*both*_"),
        ("**bold _and italic_ inside**", "*bold _and italic_ inside*"),
        ("> quoted **bold**\n> second line\n\nafter", "> quoted *bold*\n> second line\n\nafter"),
        ("> - a\n> - b", "> • a\n> • b"),
        ("**`make all`** now", "*`make all`* now"),
        ("![a chart](https://example.com/c.png)", "<https://example.com/c.png|a chart>"),
        ("[wiki](https://en.wikipedia.org/wiki/Foo_(bar))", "<https://en.wikipedia.org/wiki/Foo_(bar)|wiki>"),
        ("[a **bold** link](https://example.com)", "<https://example.com|a bold link>"),
        ("[pipe](https://example.com/a|b)", "<https://example.com/a%7Cb|pipe>"),
        ("<https://example.com/x>", "<https://example.com/x>"),
        # headings, lists, breaks, rules
        ("# **Bold** title", "*Bold title*"),
        ("Title\n=====\ntext", "*Title*\ntext"),
        ("1. one\n2. two\n   - sub\n     - subsub", "1. one\n2. two\n  • sub\n    • subsub"),
        ("3. three\n4. four", "3. three\n4. four"),
        ("- item\n  more of it\n\n  second paragraph", "• item\n  more of it\n\n  second paragraph"),
        ("para one\n\npara two", "para one\n\npara two"),
        ("line  \nbreak", "line\nbreak"),
        ("above\n\n---\n\nbelow", "above\n\n──────────\n\nbelow"),
        ("| a | b |\n|---|---|\n| 1 | 22 |", "```\na | b\n--+---\n1 | 22\n```"),
    ],
)
def test_nested_and_structured_markdown(markdown: str, mrkdwn: str) -> None:
    assert to_mrkdwn(markdown) == mrkdwn


def test_code_blocks_keep_their_markdown_and_indented_code_too() -> None:
    fenced = "```\n**not bold** <b> & [x](y)\n```"
    assert to_mrkdwn(fenced) == "```\n**not bold** &lt;b&gt; &amp; [x](y)\n```"
    assert to_mrkdwn("text\n\n    indented = 1\n    two = 2") == "text\n\n```\nindented = 1\ntwo = 2\n```"
    assert to_mrkdwn("- step\n\n  ```sh\n  make\n  ```") == "• step\n\n  ```\n  make\n  ```"


def test_html_is_text_not_markup() -> None:
    assert to_mrkdwn("<b>hi</b>") == "&lt;b&gt;hi&lt;/b&gt;"
    assert to_mrkdwn("<!channel> first") == "&lt;!channel&gt; first"


def test_white_space_around_a_part_is_kept_so_parts_join_up() -> None:
    assert to_mrkdwn("  **end of part one** ") == "  *end of part one* "
    assert to_mrkdwn("\n\nnext part\n") == "\n\nnext part\n"
    assert to_mrkdwn(" \n ") == " \n "
