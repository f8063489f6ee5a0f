"""Token counts with the model's own encoding, from the files the package ships, without the network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot import tokens

JAPANESE = "日本語のテキストを数える"


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4.1", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("llama3.1:8b", "o200k_base"),  # unknown to tiktoken: the current OpenAI encoding
        ("my-azure-deployment", "o200k_base"),
    ],
)
def test_each_model_is_counted_with_its_own_encoding(model: str, encoding: str) -> None:
    assert tokens.encoding_name(model) == encoding


def test_gpt_4o_and_gpt_4_count_the_same_text_differently() -> None:
    # o200k packs Japanese tighter than cl100k: 9 tokens against 12 (the counts tiktoken gives for each).
    assert tokens.count_tokens(JAPANESE, "gpt-4o") == 9 + tokens.MESSAGE_OVERHEAD_TOKENS
    assert tokens.count_tokens(JAPANESE, "gpt-4") == 12 + tokens.MESSAGE_OVERHEAD_TOKENS
    assert tokens.count_tokens("tiktoken is great!", "gpt-4") == 6 + tokens.MESSAGE_OVERHEAD_TOKENS
    assert tokens.uses_exact_counts("gpt-4o")
    assert tokens.uses_exact_counts("gpt-4")


def test_estimate_over_counts_english_and_counts_every_message() -> None:
    text = "The quick brown fox jumps over the lazy dog. " * 20
    assert tokens.estimate_tokens(text) >= tokens.count_tokens(text, "gpt-4o") - tokens.MESSAGE_OVERHEAD_TOKENS
    assert tokens.estimate_tokens(JAPANESE) >= len(JAPANESE)


_OFFLINE_PROBE = """
import json, socket, sys

def refuse(*args, **kwargs):
    raise OSError("no network in this test")

socket.socket.connect = refuse
socket.create_connection = refuse
from bot import tokens
print(json.dumps({
    "gpt-4o": tokens.count_tokens(sys.argv[1], "gpt-4o"),
    "gpt-4": tokens.count_tokens(sys.argv[1], "gpt-4"),
    "exact": tokens.uses_exact_counts("gpt-4o"),
    "davinci_exact": tokens.uses_exact_counts("text-davinci-003"),
}))
"""


def test_exact_counts_on_a_fresh_machine_with_no_network_and_an_empty_cache(tmp_path: Path) -> None:
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(cache)}
    shown = subprocess.run(
        [sys.executable, "-c", _OFFLINE_PROBE, JAPANESE], capture_output=True, text=True, env=env, timeout=60
    )
    assert shown.returncode == 0, shown.stderr[-800:]
    counted = json.loads(shown.stdout.strip().splitlines()[-1])
    assert counted["gpt-4o"] == 9 + tokens.MESSAGE_OVERHEAD_TOKENS
    assert counted["gpt-4"] == 12 + tokens.MESSAGE_OVERHEAD_TOKENS
    assert counted["exact"]
    assert not counted["davinci_exact"], "an encoding not shipped nor cached is estimated, never downloaded"
    assert list(cache.iterdir()) == [], "nothing is written to the user's cache"
    assert "TIKTOKEN_CACHE_DIR" in env


def test_the_shipped_files_are_the_ones_tiktoken_expects() -> None:
    import hashlib

    expected = {
        "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    }
    for name in tokens.SHIPPED_ENCODINGS:
        data = (tokens.ENCODINGS_DIR / tokens._cache_name(name)).read_bytes()
        assert hashlib.sha256(data).hexdigest() == expected[name]
