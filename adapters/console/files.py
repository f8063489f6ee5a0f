"""Files shared from the console (`bot ask --file`, `/file` in `bot console`): local paths read by the worker.

The console and its worker run on one machine in the embedded default, so a file is referenced by its absolute
path (a `file://` URL) and streamed from disk in chunks, never read whole."""

from __future__ import annotations

import asyncio
import mimetypes
import uuid
from collections.abc import AsyncGenerator
from pathlib import Path
from urllib.parse import unquote, urlparse

from adapters.console.outbound import PLATFORM
from bot.errors import InvalidInput
from bot.events import FileRef

CHUNK_BYTES = 1 << 20


def file_ref(path: Path) -> FileRef:
    """Describe a local file for intake; raises InvalidInput if it cannot be read."""
    resolved = path.expanduser().resolve()
    if not resolved.is_file():
        raise InvalidInput(f"There is no file at {path}.")
    mime, _ = mimetypes.guess_type(resolved.name)
    return FileRef(
        file_id=uuid.uuid4().hex,
        name=resolved.name,
        mime_type=mime or "application/octet-stream",
        size=resolved.stat().st_size,
        url=resolved.as_uri(),
    )


class ConsoleFileSource:
    platform = PLATFORM

    async def download(self, file: FileRef, *, max_bytes: int) -> AsyncGenerator[bytes, None]:
        url = urlparse(file.url)
        if url.scheme != "file":
            raise InvalidInput(f"“{file.name}” is not a local file ({url.scheme or 'no'} URL).")
        path = Path(unquote(url.path))
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except OSError as exc:
            raise InvalidInput(f"I can't read “{file.name}” any more: {exc.strerror}.") from None
        received = 0
        try:
            while chunk := await asyncio.to_thread(handle.read, CHUNK_BYTES):
                received += len(chunk)
                if received > max_bytes:
                    raise InvalidInput(
                        f"“{file.name}” is larger than the limit of {max_bytes / 1e6:,.0f} MB; I stopped reading it."
                    )
                yield chunk
        finally:
            await asyncio.to_thread(handle.close)
