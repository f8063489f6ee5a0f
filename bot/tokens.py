"""Token counting with the model's own encoding, offline.

tiktoken downloads its BPE files on first use, which fails (or hangs) on machines without internet. The files of
the two encodings OpenAI's chat models use, `o200k_base` (gpt-4o and later) and `cl100k_base` (gpt-4, gpt-3.5),
ship in `bot/encodings/` and are read from there; tiktoken checks their hashes. A model tiktoken does not know
(a local model, an Azure deployment's own name) is counted with `o200k_base`. An encoding not shipped is used
only when it is in tiktoken's own cache already, and otherwise the count is an estimate from UTF-8 bytes, which
over-counts English (about 4 bytes a token): the budget is never exceeded, at worst it is under-used. Nothing
here ever goes to the network.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

# The overhead OpenAI's chat format adds per message (role markers and separators).
MESSAGE_OVERHEAD_TOKENS = 4
FALLBACK_ENCODING = "o200k_base"
ENCODINGS_DIR = Path(__file__).parent / "encodings"
_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
SHIPPED_ENCODINGS = ("o200k_base", "cl100k_base")
_LOADING = threading.Lock()


def _cache_name(encoding: str) -> str:
    # tiktoken.load names a cached file by the SHA-1 of its URL.
    return hashlib.sha1(_URL.format(name=encoding).encode()).hexdigest()  # noqa: S324 (a cache key)


def _users_cache_file(encoding: str) -> Path:
    # Mirrors tiktoken.load's cache folder: TIKTOKEN_CACHE_DIR, DATA_GYM_CACHE_DIR, or a folder in the temp dir.
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    folder = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "data-gym-cache"
    return folder / _cache_name(encoding)


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text.encode("utf-8")) / 3)


@functools.cache
def encoding_name(model: str) -> str:
    """The encoding tiktoken knows `model` by ("gpt-4o-mini" -> o200k_base), or o200k_base for one it does not."""
    from tiktoken.model import encoding_name_for_model

    try:
        return encoding_name_for_model(model)
    except KeyError:
        return FALLBACK_ENCODING


@contextlib.contextmanager
def _tiktoken_cache(folder: Path) -> Iterator[None]:
    """tiktoken reads its cache folder from the environment only; pointed at ours just while it loads."""
    before = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = str(folder)
    try:
        yield
    finally:
        if before is None:
            del os.environ["TIKTOKEN_CACHE_DIR"]
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = before


@functools.cache
def _counter(encoding_name: str) -> Callable[[str], int]:
    with _LOADING:
        try:
            import tiktoken

            if _users_cache_file(encoding_name).exists():
                encoding = tiktoken.get_encoding(encoding_name)
            elif encoding_name in SHIPPED_ENCODINGS:
                with _tiktoken_cache(ENCODINGS_DIR):
                    encoding = tiktoken.get_encoding(encoding_name)
            else:
                log.info("token counts are estimates: encoding not shipped or cached", encoding=encoding_name)
                return estimate_tokens
        except Exception as exc:  # noqa: BLE001 (a corrupt file must not stop the bot; the estimate is safe)
            log.warning("token counts are estimates: encoding did not load", encoding=encoding_name, error=str(exc))
            return estimate_tokens
    return lambda text: len(encoding.encode(text, disallowed_special=()))


def warm(model: str) -> None:
    """Load `model`'s encoding on a thread now (about a second for o200k_base), so the first message counted, on a
    Slack ack's path or in `bot ask`, does not wait for it while the process is still starting its services."""
    threading.Thread(target=_counter, args=(encoding_name(model),), name="tiktoken-warm", daemon=True).start()


def count_tokens(text: str, model: str) -> int:
    """Tokens `text` takes as one chat message to `model`, overhead included."""
    return _counter(encoding_name(model))(text) + MESSAGE_OVERHEAD_TOKENS


def uses_exact_counts(model: str) -> bool:
    return _counter(encoding_name(model)) is not estimate_tokens
