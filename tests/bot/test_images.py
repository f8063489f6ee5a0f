"""Which bytes are a picture the model can look at, and which shared files count as pictures."""

from __future__ import annotations

from bot.events import FileRef
from bot.images import picture_type, pictures


def test_pictures_are_known_by_their_first_bytes() -> None:
    assert picture_type(b"\x89PNG\r\n\x1a\n....") == "image/png"
    assert picture_type(b"\xff\xd8\xff\xe0") == "image/jpeg"
    assert picture_type(b"GIF89a...") == "image/gif"
    assert picture_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert picture_type(b"RIFF\x00\x00\x00\x00WAVEfmt ") is None, "a WAV file is a RIFF too"
    assert picture_type(b"%PDF-1.7") is None


def test_pictures_are_picked_by_name_or_declared_type() -> None:
    files = [
        FileRef("F1", "chart.PNG", "image/png", 10, "u"),
        FileRef("F2", "talk.wav", "audio/wav", 10, "u"),
        FileRef("F3", "image", "image/jpeg", 10, "u"),  # a platform's name without an extension
        FileRef("F4", "diagram.svg", "image/svg+xml", 10, "u"),  # not a picture the model takes
    ]
    assert [f.file_id for f in pictures(files)] == ["F1", "F3"]
