"""Files dropped in the playground: the console server saves them under DATA_DIR/uploads/web and the worker
streams them from there, like the console's local files. The embedded default runs both on one machine; a worker
elsewhere would need the same folder (a shared volume)."""

from __future__ import annotations

import asyncio
import mimetypes
import uuid
from collections.abc import AsyncIterable
from pathlib import Path

from adapters.console.files import ConsoleFileSource
from adapters.console.outbound import safe_filename
from adapters.web.outbound import PLATFORM
from bot.datadir import make_private_dirs
from bot.errors import InvalidInput
from bot.events import FileRef


class WebFileSource(ConsoleFileSource):
    platform = PLATFORM


def uploads_dir(data_dir: Path) -> Path:
    return data_dir / "uploads" / "web"


async def save_upload(folder: Path, filename: str, chunks: AsyncIterable[bytes], *, max_bytes: int) -> FileRef:
    """Write an upload to `folder/<id>/<name>` as it arrives (never whole in memory) and describe it for intake;
    over `max_bytes` the partial file is removed and InvalidInput raised."""
    name = safe_filename(filename)
    file_id = uuid.uuid4().hex
    path = make_private_dirs(folder / file_id) / name
    handle = await asyncio.to_thread(path.open, "wb")
    size = 0
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                raise InvalidInput(f"“{name}” is larger than the limit of {max_bytes / 1e6:,.0f} MB.")
            await asyncio.to_thread(handle.write, chunk)
    except BaseException:
        await asyncio.to_thread(handle.close)
        path.unlink(missing_ok=True)
        raise
    await asyncio.to_thread(handle.close)
    mime, _ = mimetypes.guess_type(name)
    return FileRef(
        file_id=file_id, name=name, mime_type=mime or "application/octet-stream", size=size, url=path.as_uri()
    )
