"""Attaching a transcript to a thread as a text file, or saying why it could not be attached."""

from __future__ import annotations

from pathlib import PurePosixPath

from bot.errors import InvalidInput
from bot.events import ThreadRef
from bot.media.transcripts import clock, timestamped
from bot.ports import ChatPlatform, FileUpload, Transcript


async def upload_transcript(
    platform: ChatPlatform, thread: ThreadRef, media_name: str, transcript: Transcript, key: str
) -> str:
    """Upload the timestamped transcript once per `key`; if the platform refuses the file (too large for it), a
    short notice is posted instead, keyed `{key}-refused`. Returns the message id."""
    body = timestamped(transcript.utterances) or transcript.text
    stem = PurePosixPath(media_name.replace("\\", "/")).stem or "media"
    try:
        upload = FileUpload(
            filename=f"{stem}-transcript.txt",
            content=body.encode("utf-8"),
            title=f"Transcript: {media_name}",
            comment=f"Full transcript of {media_name} ({clock(transcript.duration_s)}).",
        )
        posted = await platform.upload_file(thread, upload, idempotency_key=key)
    except InvalidInput as refused:
        notice = f"📎 I couldn't attach the transcript: {refused.user_message} Ask me about it here instead."
        posted = await platform.post_message(thread, notice, idempotency_key=f"{key}-refused")
    return posted.message_id
