from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from adapters.web.files import WebFileSource, save_upload
from bot.errors import InvalidInput


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_an_upload_is_saved_in_a_folder_of_its_own_and_read_back(tmp_path: Path) -> None:
    ref = await save_upload(tmp_path, "../../etc/notes.txt", chunks(b"one ", b"two"), max_bytes=100)
    path = Path(urlparse(ref.url).path)
    assert path.parent.parent == tmp_path
    assert (path.name, ref.name, ref.size, ref.mime_type) == ("notes.txt", "notes.txt", 7, "text/plain")
    assert path.read_bytes() == b"one two"
    read = b"".join([chunk async for chunk in WebFileSource().download(ref, max_bytes=100)])
    assert read == b"one two"


async def test_an_upload_over_the_limit_is_refused_and_removed(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="larger than the limit"):
        await save_upload(tmp_path, "big.bin", chunks(b"x" * 60, b"x" * 60), max_bytes=100)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
