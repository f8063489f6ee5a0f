"""Cutting replies into Discord messages: under the limit, code blocks fenced in every message, stable while the
text grows (messages already sent keep their text)."""

from __future__ import annotations

import pytest

from adapters.discord.splitting import fence_state, join_messages, split_message
from sandbox.openai_server import long_text

CODE = "```sql\n" + "\n".join(f"SELECT {i} AS n, 'row {i}' AS label FROM numbers;" for i in range(70)) + "\n```\n"
TEXT = long_text(300) + "\n\n" + CODE + "\nAnd that is the query.\n\n" + long_text(2500)


def test_short_text_is_one_message() -> None:
    assert split_message("hello", 2000) == ["hello"]


def test_every_message_fits_and_renders_its_code_on_its_own() -> None:
    parts = split_message(TEXT, 2000)
    assert len(parts) > 2
    assert all(len(p) <= 2000 for p in parts)
    assert all(fence_state(p) is None for p in parts)
    assert parts[1].startswith("```sql\n"), "the language survives the cut"
    assert join_messages(parts) == TEXT


def test_a_block_that_opens_late_moves_whole_to_the_next_message() -> None:
    prose = long_text(1500) + "\n\n"
    text = prose + "```\n" + "x = 1\n" * 100 + "```\n" + long_text(500)
    parts = split_message(text, 2000)
    assert parts[0] == prose
    assert parts[1].startswith("```\n")
    assert join_messages(parts) == text


def test_a_long_line_without_breaks_is_cut_hard() -> None:
    parts = split_message("y" * 4500, 2000)
    assert [len(p) for p in parts] == [1996, 1996, 508]
    assert join_messages(parts) == "y" * 4500


@pytest.mark.parametrize("length", range(1500, len(TEXT), 211))
def test_messages_already_sent_stay_the_same_as_the_text_grows(length: int) -> None:
    final = split_message(TEXT, 2000)
    partial = split_message(TEXT[:length], 2000)
    assert partial[:-1] == final[: len(partial) - 1]
