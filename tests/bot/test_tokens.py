from __future__ import annotations

from pathlib import Path

import pytest

from bot import tokens


def test_estimate_over_counts_english_and_counts_every_message() -> None:
    text = "The quick brown fox jumps over the lazy dog. " * 20
    # cl100k gives about 10 tokens per repetition; the estimate must never be below the real count.
    assert tokens.estimate_tokens(text) >= 10 * 20
    assert tokens.count_tokens("") == tokens.MESSAGE_OVERHEAD_TOKENS


def test_multibyte_text_is_not_under_counted() -> None:
    assert tokens.estimate_tokens("日本語のテキスト") >= len("日本語のテキスト")


def test_without_a_cached_tiktoken_file_counting_stays_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    tokens._counter.cache_clear()
    try:
        assert not tokens.uses_exact_counts()
        assert tokens.count_tokens("hello world") == tokens.estimate_tokens("hello world") + 4
    finally:
        tokens._counter.cache_clear()
