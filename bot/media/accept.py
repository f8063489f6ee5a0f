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
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp"})
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
ACCEPTED = "audio or video files, or text transcripts (.txt, .md, .vtt, .srt)"
ACCEPTED_WITH_IMAGES = f"{ACCEPTED}, or pictures (.png, .jpg, .gif, .webp) to look at with a question"


def shared_text(files: Sequence[FileRef]) -> str:
    """What a message that is only files says, in the thread's history and to intake (which refuses empty text).
    Every adapter writes this same line, so the media flow can tell it from words the user typed."""
    return "Shared " + ", ".join(f"“{f.name}”" for f in files)


def extension(name: str) -> str:
    return PurePosixPath(name).suffix.lower()


def is_image(file: FileRef) -> bool:
    """A picture for the model to look at (bot.images), not a file for the media flow."""
    ext = extension(file.name)
    return ext in IMAGE_EXTENSIONS or (
        not ext and file.mime_type in ("image/png", "image/jpeg", "image/gif", "image/webp")
    )


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
        if is_image(file):
            if not settings.llm_vision:
                raise InvalidInput(
                    f"I can't look at “{file.name}”: the model I use here does not read pictures. I take {ACCEPTED}."
                )
            if file.size > settings.max_image_bytes:
                raise too_big(file, settings.max_image_bytes)
            continue
        if not looks_acceptable(file):
            declared = file.mime_type or "an unknown type"
            accepted = ACCEPTED_WITH_IMAGES if settings.llm_vision else ACCEPTED
            raise InvalidInput(f"I can't digest “{file.name}” ({declared}): I take {accepted}.")
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
