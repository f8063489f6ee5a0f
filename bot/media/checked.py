"""A user's file as it streams in: its type sniffed from the head before a byte is stored, its size held to the
limit as bytes arrive, its sha256 taken on the way. Every blob store takes files through this."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

from bot.errors import InvalidInput
from bot.media.sniff import ACCEPTED, SNIFF_BYTES, Kind, describe, sniff

# Hashing runs at about 1.5 GB/s: a chunk this big would hold the event loop for a noticeable fraction of a ms.
_HASH_IN_THREAD_BYTES = 256 * 1024


def megabytes(size: int) -> str:
    if size < 100_000:
        return f"{size:,} bytes"
    return f"{size / 1_000_000:,.1f} MB"


def wrong_type(filename: str, head: bytes) -> InvalidInput:
    return InvalidInput(f"“{filename}” looks like {describe(head, filename)}, which I can't use: I accept {ACCEPTED}.")


def too_large(filename: str, max_bytes: int, size_so_far: int) -> InvalidInput:
    return InvalidInput(
        f"“{filename}” is over the {megabytes(max_bytes)} limit: {megabytes(size_so_far)} had arrived when I "
        "stopped reading it. Share a shorter or compressed version."
    )


class CheckedStream:
    """Call `check_type()` first, then iterate `chunks()`; `size` and `sha256` are final once it is exhausted."""

    def __init__(self, chunks: AsyncIterator[bytes], *, filename: str, max_bytes: int) -> None:
        self._source = aiter(chunks)
        self._filename = filename
        self._max_bytes = max_bytes
        self._head: list[bytes] | None = None
        self._hash = hashlib.sha256()
        self.size = 0

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    async def check_type(self) -> tuple[str, Kind]:
        """Read the head of the stream and say what it is; raises `InvalidInput` for anything we do not take."""
        head: list[bytes] = []
        seen = 0
        while seen < SNIFF_BYTES:
            chunk = await anext(self._source, None)
            if chunk is None:
                break
            self._count(chunk)
            head.append(chunk)
            seen += len(chunk)
        self._head = head
        first = b"".join(head)[:SNIFF_BYTES]
        found = sniff(first, self._filename)
        if found is None:
            raise wrong_type(self._filename, first)
        return found

    async def chunks(self) -> AsyncIterator[bytes]:
        if self._head is None:
            raise RuntimeError("check_type() must run before the stream is read")
        for chunk in self._head:
            await self._digest(chunk)
            yield chunk
        self._head = []
        async for chunk in self._source:
            if not chunk:
                continue
            self._count(chunk)
            await self._digest(chunk)
            yield chunk

    def _count(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self._max_bytes:
            raise too_large(self._filename, self._max_bytes, self.size)

    async def _digest(self, chunk: bytes) -> None:
        if len(chunk) >= _HASH_IN_THREAD_BYTES:
            await asyncio.to_thread(self._hash.update, chunk)
        else:
            self._hash.update(chunk)
