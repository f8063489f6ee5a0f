"""Token counting that works offline.

tiktoken downloads its BPE files on first use, which fails on machines without internet. We use it only when
its file is already cached, and otherwise estimate from UTF-8 bytes, which over-counts English (about 4 bytes a
token) and stays close for scripts whose characters take 3 bytes and one token each: the budget is never
exceeded, at worst it is under-used.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

# The overhead OpenAI's chat format adds per message (role markers and separators).
MESSAGE_OVERHEAD_TOKENS = 4
_CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"


def _tiktoken_cache_file(url: str) -> Path:
    # Mirrors tiktoken.load's cache naming: TIKTOKEN_CACHE_DIR, DATA_GYM_CACHE_DIR, or a folder in the temp dir.
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    folder = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "data-gym-cache"
    return folder / hashlib.sha1(url.encode()).hexdigest()  # noqa: S324 (a cache key, not security)


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text.encode("utf-8")) / 3)


@functools.cache
def _counter() -> Callable[[str], int]:
    if _tiktoken_cache_file(_CL100K_URL).exists():
        try:
            import tiktoken

            encoding = tiktoken.get_encoding("cl100k_base")
            return lambda text: len(encoding.encode(text, disallowed_special=()))
        except Exception:  # noqa: BLE001, S110 (a corrupt cache must not stop the bot; the estimate is safe)
            pass
    return estimate_tokens


def count_tokens(text: str) -> int:
    """Tokens `text` takes as one chat message, overhead included."""
    return _counter()(text) + MESSAGE_OVERHEAD_TOKENS


def uses_exact_counts() -> bool:
    return _counter() is not estimate_tokens
