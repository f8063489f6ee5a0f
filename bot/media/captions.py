"""Text files skip transcription: plain text and Markdown are taken as they are, WebVTT and SubRip captions become
timed utterances (WebVTT voice tags become speakers)."""

from __future__ import annotations

import codecs
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

from bot.errors import InvalidInput
from bot.ports import Transcript, Utterance

__all__ = ["caption_format", "transcript_from_text"]

CaptionFormat = Literal["vtt", "srt", "text"]

_VTT_TIME = re.compile(r"(?:(\d{2,}):)?([0-5]\d):([0-5]\d)\.(\d{3})")
# SubRip writes a comma before the milliseconds; some tools write a dot, which players accept too.
_SRT_TIME = re.compile(r"(\d+):([0-5]\d):([0-5]\d)[,.](\d{3})")
_VTT_HEADER = re.compile(r"WEBVTT(?:[ \t].*)?")
_VTT_SKIPPED_BLOCKS = re.compile(r"(?:NOTE|STYLE|REGION)(?:[ \t].*)?")
_VOICE = re.compile(r"<v(?:\.[^\s>]+)*[ \t]+([^>]+)>")
_TAG = re.compile(r"<[^>]*>")
# Renderer overrides some SubRip files carry, e.g. {\an8} to put a line at the top.
_SRT_OVERRIDE = re.compile(r"\{\\[^}]*\}")
_UTF16_32_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")


@dataclass(frozen=True, slots=True)
class _Cue:
    start_s: float
    end_s: float
    text: str
    voice: str = ""


def transcript_from_text(data: bytes, filename: str, content_type: str) -> Transcript:
    """A `Transcript` from a text file. Raises `InvalidInput` (its message names the file and, for captions, the
    line) for text that is not UTF-8, an empty file or malformed cues."""
    text = _decode(data, filename)
    kind = caption_format(text, filename, content_type)
    if kind == "text":
        body = text.strip()
        if not body:
            raise InvalidInput(f"{filename} is empty.")
        return Transcript(
            text=body, duration_s=0.0, utterances=(Utterance(speaker=0, start_s=0.0, end_s=0.0, text=body),)
        )
    cues = _vtt_cues(text, filename) if kind == "vtt" else _srt_cues(text, filename)
    return _transcript(cues, filename)


def caption_format(text: str, filename: str, content_type: str) -> CaptionFormat:
    """WebVTT says so in its first line; otherwise the file's extension or content type decides."""
    if _VTT_HEADER.fullmatch(text.split("\n", 1)[0]):
        return "vtt"
    suffix = PurePosixPath(filename).suffix.lower()
    mime = content_type.split(";", 1)[0].strip().lower()
    if suffix == ".vtt" or mime == "text/vtt":
        return "vtt"
    if suffix == ".srt" or mime in ("application/x-subrip", "application/srt", "text/srt", "text/x-srt"):
        return "srt"
    return "text"


def _decode(data: bytes, filename: str) -> str:
    if data.startswith(_UTF16_32_BOMS):
        raise InvalidInput(f"{filename} is UTF-16 or UTF-32 text; save it as UTF-8 and share it again.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # The decoder counts from after the BOM; people count from the first byte of the file, as 1.
        position = exc.start + (len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0) + 1
        raise InvalidInput(
            f"{filename} is not UTF-8 text (byte {position} cannot be read); save it as UTF-8 and share it again."
        ) from exc
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _blocks(lines: list[str]) -> Iterator[tuple[int, list[str]]]:
    """Runs of non-blank lines with the 1-based number of their first line."""
    block: list[str] = []
    start = 0
    for index, line in enumerate(lines):
        if line.strip():
            if not block:
                start = index
            block.append(line)
        elif block:
            yield start + 1, block
            block = []
    if block:
        yield start + 1, block


def _seconds(value: str, pattern: re.Pattern[str], where: str, expected: str) -> float:
    match = pattern.fullmatch(value)
    if match is None:
        raise InvalidInput(f'{where}: "{value}" is not a timestamp (expected {expected}).')
    hours, minutes, seconds, millis = match.groups()
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(millis) / 1000


def _timing(line: str, pattern: re.Pattern[str], where: str, expected: str) -> tuple[float, float]:
    """Start and end of a `start --> end [settings]` line; what follows the end (cue settings) is ignored."""
    left, arrow, right = line.partition("-->")
    end_text = right.split()[0] if right.split() else ""
    if not arrow:
        raise InvalidInput(f"{where}: expected a cue timing like 00:00:01.000 --> 00:00:04.000.")
    start = _seconds(left.strip(), pattern, where, expected)
    end = _seconds(end_text, pattern, where, expected)
    if end < start:
        raise InvalidInput(f"{where}: the cue ends before it starts.")
    return start, end


def _vtt_cues(text: str, filename: str) -> list[_Cue]:
    lines = text.split("\n")
    if not _VTT_HEADER.fullmatch(lines[0]):
        raise InvalidInput(f"{filename}, line 1: a WebVTT file must start with WEBVTT.")
    expected = "hh:mm:ss.mmm or mm:ss.mmm"
    cues: list[_Cue] = []
    blocks = _blocks(lines)
    next(blocks)  # the header block: WEBVTT and any header lines under it
    for number, block in blocks:
        if _VTT_SKIPPED_BLOCKS.fullmatch(block[0]):
            continue
        # A cue may start with an identifier line before its timing.
        at = 0 if "-->" in block[0] else 1
        if at >= len(block) or "-->" not in block[at]:
            raise InvalidInput(f"{filename}, line {number + at}: expected a cue timing like 00:01.000 --> 00:04.000.")
        start, end = _timing(block[at], _VTT_TIME, f"{filename}, line {number + at}", expected)
        payload = "\n".join(block[at + 1 :])
        voice = _VOICE.search(payload)
        text = _plain(html.unescape(_TAG.sub("", payload)))
        cues.append(_Cue(start, end, text, voice.group(1).strip() if voice else ""))
    return cues


def _srt_cues(text: str, filename: str) -> list[_Cue]:
    expected = "hh:mm:ss,mmm"
    cues: list[_Cue] = []
    for number, block in _blocks(text.split("\n")):
        at = 1 if block[0].strip().isdigit() else 0
        if at >= len(block) or "-->" not in block[at]:
            if cues and at == 0:
                # A blank line inside a cue's text: the text goes on.
                last = cues[-1]
                cues[-1] = _Cue(last.start_s, last.end_s, _plain(f"{last.text}\n{_srt_text(block)}"))
                continue
            raise InvalidInput(
                f"{filename}, line {number + at}: expected a cue timing like 00:00:01,000 --> 00:00:04,000."
            )
        start, end = _timing(block[at], _SRT_TIME, f"{filename}, line {number + at}", expected)
        cues.append(_Cue(start, end, _plain(_srt_text(block[at + 1 :]))))
    return cues


def _srt_text(lines: list[str]) -> str:
    return _SRT_OVERRIDE.sub("", _TAG.sub("", "\n".join(lines)))


def _plain(text: str) -> str:
    """Caption lines are broken for the screen, not by meaning: one line of single spaces."""
    return " ".join(text.split())


def _transcript(cues: list[_Cue], filename: str) -> Transcript:
    if not any(cue.text for cue in cues):
        raise InvalidInput(f"{filename} has no captions in it.")
    speakers: dict[str, int] = {}
    speaker, name = 0, ""
    utterances: list[Utterance] = []
    lines: list[str] = []
    for cue in cues:
        if cue.voice:
            # Captions usually name the voice only when it changes, so a cue without one keeps the last speaker.
            name = cue.voice
            speaker = speakers.setdefault(name, len(speakers))
        if not cue.text:
            continue
        utterances.append(Utterance(speaker=speaker, start_s=cue.start_s, end_s=cue.end_s, text=cue.text))
        # Utterances carry only a number; the names survive in the text.
        lines.append(f"{name}: {cue.text}" if name else cue.text)
    return Transcript(text="\n".join(lines), duration_s=max(cue.end_s for cue in cues), utterances=tuple(utterances))
