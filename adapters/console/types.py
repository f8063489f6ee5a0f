"""The console platform's one payload: an entry of a thread's Redis stream, written by `outbound` and read by
`app`. All values are text, as Redis keeps them."""

from __future__ import annotations

from typing import Literal, TypedDict


class StreamEntry(TypedDict, total=False):
    op: Literal["post", "edit"]
    id: str  # the message's id, which edits name
    text: str
    file: str  # an upload's file name; its bytes wait under `file_key(id)`
    title: str
    size: str
    key: str  # the idempotency key a post carries
