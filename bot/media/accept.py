"""What intake checks about a shared file before accepting the message: count, size and a plausible type by name
and declared type. The bytes' own magic numbers are checked again when the file is stored (bot.media.blobs)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath

from bot.config import Settings
from bot.errors import InvalidInput
from bot.events import FileRef

MAX_FILES_PER_MESSAGE = 5
TEXT_EXTENSIONS = frozenset({".txt", ".md", ".vtt", ".srt"})
MEDIA_EXTENSIONS = frozenset(
    {".wav", ".mp3", ".m4a", ".aac", ".flac", ".ogg", ".oga", ".opus", ".webm", ".mp4", ".mov", ".mkv", ".m4v"}
)
ACCEPTED = "audio or video files, or text transcripts (.txt, .md, .vtt, .srt)"


def shared_text(files: Sequence[FileRef]) -> str:
    """What a message that is only files says, in the thread's history and to intake (which refuses empty text).
    Every adapter writes this same line, so the media flow can tell it from words the user typed."""
    return "Shared " + ", ".join(f"“{f.name}”" for f in files)


def extension(name: str) -> str:
    return PurePosixPath(name).suffix.lower()


def looks_acceptable(file: FileRef) -> bool:
    ext = extension(file.name)
    if ext in TEXT_EXTENSIONS or ext in MEDIA_EXTENSIONS:
        return True
    # A platform may name a recording without an extension ("audio_message"); its declared type decides then.
    return not ext and file.mime_type.split("/")[0] in ("audio", "video")


def check_files(files: Sequence[FileRef], settings: Settings) -> None:
    """Raise `InvalidInput` naming the file and the rule it breaks; nothing is stored before this passes."""
    if len(files) > MAX_FILES_PER_MESSAGE:
        raise InvalidInput(
            f"You shared {len(files)} files; I take at most {MAX_FILES_PER_MESSAGE} per message. "
            "Send the others in another message."
        )
    for file in files:
        if not looks_acceptable(file):
            declared = file.mime_type or "an unknown type"
            raise InvalidInput(f"I can't digest “{file.name}” ({declared}): I take {ACCEPTED}.")
        if file.size > settings.max_file_bytes:
            raise too_big(file, settings.max_file_bytes)


def human_size(size: int) -> str:
    for unit, factor in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}".replace(".0 ", " ")
    return f"{size} bytes"


def too_big(file: FileRef, max_bytes: int) -> InvalidInput:
    """The one wording of "too large", whether intake sees the declared size or a download finds more bytes."""
    size, limit = human_size(file.size), human_size(max_bytes)
    if size == limit:  # just over: rounded, both would read the same
        size, limit = f"{file.size:,} bytes", f"{max_bytes:,} bytes"
    return InvalidInput(
        f"“{file.name}” is {size}; the largest file I accept is {limit}. Share a shorter or compressed version."
    )
