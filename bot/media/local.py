"""The blob store of the embedded default: files under DATA_DIR/media, written to a hidden temp file beside their
final name and renamed into place, so a reader never sees a half-written file."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from bot.datadir import make_private_dirs
from bot.errors import PermanentUpstreamError, TransientUpstreamError
from bot.media.checked import CheckedStream
from bot.ports import StoredBlob

SERVICE = "local media folder"
# Chunks from a download are often 16-64 KiB; writing them in batches keeps thread hand-offs per MiB, not per chunk.
_WRITE_BATCH_BYTES = 1 << 20


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, key: str) -> Path:
        parts = PurePosixPath(key).parts
        # Keys are made by the bot, but a key must never name a file outside the media folder.
        if not parts or key.startswith("/") or "\\" in key or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"not a blob key: {key!r}")
        return self.root.joinpath(*parts)

    async def put_stream(self, key: str, chunks: AsyncIterator[bytes], *, filename: str, max_bytes: int) -> StoredBlob:
        target = self.path_for(key)
        checked = CheckedStream(chunks, filename=filename, max_bytes=max_bytes)
        content_type, kind = await checked.check_type()
        try:
            file, temp = await asyncio.to_thread(_open_temp, target)
        except OSError as exc:
            raise TransientUpstreamError(SERVICE, f"cannot create a file under {target.parent}: {exc}") from exc
        try:
            batch: list[bytes] = []
            batched = 0
            async for chunk in checked.chunks():
                batch.append(chunk)
                batched += len(chunk)
                if batched >= _WRITE_BATCH_BYTES:
                    await asyncio.to_thread(file.writelines, batch)
                    batch, batched = [], 0
            await asyncio.to_thread(_finish, file, batch, temp, target)
        except BaseException as exc:
            await asyncio.to_thread(_discard, file, temp)
            if isinstance(exc, OSError):
                raise TransientUpstreamError(SERVICE, f"cannot write {target}: {exc}") from exc
            raise
        return StoredBlob(key=key, size=checked.size, sha256=checked.sha256, content_type=content_type, kind=kind)

    async def read(self, key: str, *, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        path = self.path_for(key)
        try:
            file = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            raise PermanentUpstreamError(
                SERVICE, f"no blob {key} under {self.root}", "That file is no longer stored here; share it again."
            ) from None
        try:
            while chunk := await asyncio.to_thread(file.read, chunk_size):
                yield chunk
        finally:
            file.close()

    async def presigned_url(self, key: str, *, expires_s: int) -> str | None:
        return None  # nothing serves this folder over HTTP: transcribers get the bytes streamed instead

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._delete, self.path_for(key))

    def close(self) -> None:
        """Nothing to release; here so callers can close any blob store alike."""

    def _delete(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        # Keys carry per-run folders; drop the ones left empty so the media folder does not fill with them.
        for parent in path.parents:
            if parent == self.root or self.root not in parent.parents:
                break
            try:
                parent.rmdir()
            except OSError:
                break


def _open_temp(target: Path) -> tuple[BinaryIO, Path]:
    make_private_dirs(target.parent)  # mkstemp's file is 0600 already
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    return os.fdopen(fd, "wb"), Path(name)


def _finish(file: BinaryIO, batch: list[bytes], temp: Path, target: Path) -> None:
    with file:
        file.writelines(batch)
        file.flush()
        # Durable before it is visible: after a crash the name holds the whole file or nothing.
        os.fsync(file.fileno())
    os.replace(temp, target)


def _discard(file: BinaryIO, temp: Path) -> None:
    with contextlib.suppress(OSError):
        file.close()
    temp.unlink(missing_ok=True)
