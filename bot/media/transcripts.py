"""Transcripts as the rest of the bot sees them: kept in Postgres (the text on the media row, one row per
utterance), formatted with timestamps for prompts and the attached file, and cut into chunks for retrieval."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.media.models import MEDIA, UTTERANCES
from bot.ports import Transcript, Utterance

CHUNK_CHARS = 1200


def clock(seconds: float) -> str:
    """12:05 or 1:02:03: how people cite a moment of a recording."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def timestamped(utterances: tuple[Utterance, ...] | list[Utterance]) -> str:
    """One line per utterance: `[00:12] Speaker 1: text`. Speakers count from 1 for people."""
    return "\n".join(f"[{clock(u.start_s)}] Speaker {u.speaker + 1}: {u.text}" for u in utterances)


def transcript_to_json(transcript: Transcript) -> dict[str, Any]:
    return {
        "text": transcript.text,
        "duration_s": transcript.duration_s,
        "language": transcript.language,
        "utterances": [[u.speaker, u.start_s, u.end_s, u.text] for u in transcript.utterances],
    }


def transcript_from_json(data: dict[str, Any]) -> Transcript:
    return Transcript(
        text=data["text"],
        duration_s=data["duration_s"],
        language=data.get("language", ""),
        utterances=tuple(Utterance(*u) for u in data["utterances"]),
    )


async def save_transcript(conn: AsyncConnection, media_id: int, transcript: Transcript) -> None:
    """Replace the media's transcript in one transaction: a retried step never leaves two halves."""
    async with conn.begin():
        await conn.execute(delete(UTTERANCES).where(UTTERANCES.c.media_id == media_id))
        if transcript.utterances:
            await conn.execute(
                insert(UTTERANCES),
                [
                    {
                        "media_id": media_id,
                        "seq": seq,
                        "speaker": u.speaker,
                        "start_s": u.start_s,
                        "end_s": u.end_s,
                        "text": u.text,
                    }
                    for seq, u in enumerate(transcript.utterances)
                ],
            )
        await conn.execute(
            update(MEDIA)
            .where(MEDIA.c.id == media_id)
            .values(
                transcript=transcript.text,
                duration_s=transcript.duration_s,
                language=transcript.language,
                status="transcribed",
            )
        )


async def load_transcript(conn: AsyncConnection, media_id: int) -> Transcript | None:
    row = (
        await conn.execute(
            select(MEDIA.c.transcript, MEDIA.c.duration_s, MEDIA.c.language).where(MEDIA.c.id == media_id)
        )
    ).first()
    if row is None or row.transcript is None:
        return None
    u = UTTERANCES.c
    rows = (
        await conn.execute(select(u.speaker, u.start_s, u.end_s, u.text).where(u.media_id == media_id).order_by(u.seq))
    ).all()
    return Transcript(
        text=row.transcript,
        duration_s=row.duration_s or 0.0,
        language=row.language or "",
        utterances=tuple(Utterance(*r) for r in rows),
    )


@dataclass(frozen=True, slots=True)
class Chunk:
    seq: int
    start_s: float
    end_s: float
    text: str


def chunk_transcript(transcript: Transcript, max_chars: int = CHUNK_CHARS) -> list[Chunk]:
    """Consecutive utterances packed into chunks of about `max_chars`, each keeping its time span so an answer
    can cite where in the recording it comes from. A transcript without utterances is cut by paragraphs."""
    lines: list[tuple[float, float, str]] = [
        (u.start_s, u.end_s, f"[{clock(u.start_s)}] Speaker {u.speaker + 1}: {u.text}") for u in transcript.utterances
    ] or [(0.0, 0.0, part) for part in transcript.text.split("\n\n") if part.strip()]
    chunks: list[Chunk] = []
    current: list[tuple[float, float, str]] = []
    size = 0
    for line in lines:
        # A single very long line still becomes its own chunks rather than one oversized one.
        for start in range(0, max(len(line[2]), 1), max_chars):
            piece = (line[0], line[1], line[2][start : start + max_chars])
            if current and size + len(piece[2]) > max_chars:
                chunks.append(_chunk(len(chunks), current))
                current, size = [], 0
            current.append(piece)
            size += len(piece[2]) + 1
    if current:
        chunks.append(_chunk(len(chunks), current))
    return chunks


def _chunk(seq: int, lines: list[tuple[float, float, str]]) -> Chunk:
    return Chunk(seq=seq, start_s=lines[0][0], end_s=lines[-1][1], text="\n".join(line[2] for line in lines))
