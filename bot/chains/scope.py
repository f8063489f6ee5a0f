"""What a chain's templates see: `input`, `transcript`, `thread`, `media`, `now` (and `steps`, added by the runner),
as plain JSON-ready values, with long texts cut to a budget and a note saying so."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import select

from bot.chains.templates import timestamp
from bot.ports import Transcript
from bot.runtime import Runtime


def transcript_scope(transcript: Transcript) -> dict[str, Any]:
    """`text`, `duration` (s), `language`, `utterances` [{speaker, start, end, text}] and `timestamped`, the
    transcript as "[mm:ss] Speaker 1: ..." lines, which is what prompts that want chapters should quote."""
    utterances = [
        {"speaker": f"Speaker {u.speaker + 1}", "start": u.start_s, "end": u.end_s, "text": u.text}
        for u in transcript.utterances
    ]
    return {
        "text": transcript.text,
        "duration": transcript.duration_s,
        "language": transcript.language,
        "utterances": utterances,
        "timestamped": timestamped(utterances, hours=transcript.duration_s >= 3600),
    }


def timestamped(utterances: Iterable[Mapping[str, Any]], *, hours: bool = False) -> str:
    lines = []
    for u in utterances:
        at = timestamp(u["start"])
        if hours and at.count(":") == 1:
            at = f"0:{at}"  # one width for every line of a long recording
        lines.append(f"[{at}] {u['speaker']}: {u['text']}")
    return "\n".join(lines)


def media_scope(name: str, kind: str, duration_s: float | None) -> dict[str, Any]:
    return {"name": name, "kind": kind, "duration": duration_s}


async def load_thread(
    runtime: Runtime, thread_id: int, *, limit: int = 200, up_to: int | None = None
) -> list[dict[str, str]]:
    """The thread's answered messages, oldest first, as `thread` entries {role, user, text}; the bot's own
    messages have the user "assistant". `up_to` (a message id) keeps a resumed run's view of the thread as it
    was when the run began, whatever was said since."""
    from bot.models import MESSAGES

    m = MESSAGES.c
    query = select(m.role, m.author_id, m.text).where(m.thread_id == thread_id, m.status == "completed")
    if up_to is not None:
        query = query.where(m.id <= up_to)
    async with runtime.autocommit.connect() as conn:
        rows = (await conn.execute(query.order_by(m.id.desc()).limit(limit))).all()
    return [
        {"role": role, "user": "assistant" if role == "assistant" else author or "someone", "text": text}
        for role, author, text in reversed(rows)
    ]


def fit_scope(scope: Mapping[str, Any], max_chars: int) -> dict[str, Any]:
    """The scope with the transcript and the thread cut to `max_chars` characters each, saying where."""
    fitted = dict(scope)
    transcript = fitted.get("transcript")
    if isinstance(transcript, Transcript):
        transcript = transcript_scope(transcript)
    if isinstance(transcript, Mapping):
        fitted["transcript"] = _fit_transcript(transcript, max_chars)
    thread = fitted.get("thread")
    if isinstance(thread, Sequence) and not isinstance(thread, str):
        fitted["thread"] = _fit_thread(thread, max_chars)
    return fitted


def cut_note(kept: int) -> str:
    return f"[transcript cut at {kept} characters]"


def _fit_transcript(transcript: Mapping[str, Any], max_chars: int) -> dict[str, Any]:
    fitted = dict(transcript)
    for key in ("text", "timestamped"):
        text = fitted.get(key)
        if isinstance(text, str) and len(text) > max_chars:
            # Cut at a line (timestamped) or word end where one is near, so no speaker or word is half there.
            kept = text[:max_chars]
            boundary = kept.rfind("\n" if key == "timestamped" else " ")
            if boundary > max_chars * 0.8:
                kept = kept[:boundary]
            fitted[key] = f"{kept.rstrip()}\n{cut_note(len(kept))}"
    utterances = fitted.get("utterances")
    if isinstance(utterances, list):
        total, kept_utterances = 0, []
        for utterance in utterances:
            total += len(str(utterance.get("text", ""))) if isinstance(utterance, Mapping) else 0
            if total > max_chars:
                break
            kept_utterances.append(utterance)
        fitted["utterances"] = kept_utterances
    return fitted


def _fit_thread(thread: Sequence[Any], max_chars: int) -> list[Any]:
    """The newest messages that fit; a first entry says how many older ones were left out."""
    kept: list[Any] = []
    total = 0
    for entry in reversed(thread):
        size = len(str(entry.get("text", ""))) if isinstance(entry, Mapping) else len(str(entry))
        if kept and total + size > max_chars:
            break
        if size > max_chars and isinstance(entry, Mapping):
            text = str(entry["text"])[:max_chars]
            entry = {**entry, "text": f"{text}\n[message cut at {max_chars} characters]"}
        kept.append(entry)
        total += size
    kept.reverse()
    left_out = len(thread) - len(kept)
    if left_out:
        note = f"[{left_out} earlier message{'s' if left_out != 1 else ''} left out to fit]"
        kept.insert(0, {"role": "system", "user": "threadbot", "text": note})
    return kept
