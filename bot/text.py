"""Cutting text into parts a platform can post: the default for every platform (Discord brings its own cut)."""

from __future__ import annotations


def split_text(text: str, limit: int) -> list[str]:
    """Cut `text` into parts of at most `limit` characters, preferring a paragraph, line or word break in the
    last fifth of each part. Only text before a cut decides where it falls, so parts already sent stay the
    same while the text grows."""
    parts: list[str] = []
    start = 0
    while len(text) - start > limit:
        window = text[start : start + limit]
        cut = -1
        for separator in ("\n\n", "\n", " "):
            found = window.rfind(separator, limit * 4 // 5)
            if found > 0:
                cut = found + len(separator)
                break
        if cut <= 0:
            cut = limit
        parts.append(text[start : start + cut])
        start += cut
    parts.append(text[start:])
    return parts
