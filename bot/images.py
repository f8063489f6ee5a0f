"""Pictures shared with a question: downloaded from the platform (its own hosts and the bot's token, as every
file) within MAX_IMAGE_BYTES, checked to be the picture they claim by their first bytes, and handed to the model
as data: URLs. Nothing is kept: a retry downloads them again."""

from __future__ import annotations

import base64
from collections.abc import Sequence

from bot.errors import InvalidInput
from bot.events import FileRef
from bot.media.accept import is_image
from bot.ports import FileSource

# What the model takes (OpenAI's vision input), by signature.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def picture_type(head: bytes) -> str | None:
    for signature, mime in _SIGNATURES:
        if head.startswith(signature):
            return mime
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def pictures(files: Sequence[FileRef]) -> list[FileRef]:
    return [file for file in files if is_image(file)]


async def data_urls(source: FileSource, files: Sequence[FileRef], *, max_bytes: int) -> list[str]:
    """Each picture as a data: URL. Raises `InvalidInput` for one over the limit or that is not a picture, and
    the source's own errors for a download that fails (transient ones are retried by the step)."""
    urls = []
    for file in files:
        content = bytearray()
        async for chunk in source.download(file, max_bytes=max_bytes):  # the source stops past max_bytes
            content += chunk
        mime = picture_type(bytes(content[:16]))
        if mime is None:
            raise InvalidInput(f"“{file.name}” is not a PNG, JPEG, GIF or WebP picture, so I could not look at it.")
        urls.append(f"data:{mime};base64,{base64.b64encode(content).decode('ascii')}")
    return urls
