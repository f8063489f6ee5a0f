"""What the stand-in transcription server learns from media as it streams past: size, sha256 and duration.

WAV durations are exact (from the RIFF header); other formats are estimated from their size at a typical bitrate.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

__all__ = ["CorruptMedia", "MediaProbe", "WavHeader", "estimated_seconds", "parse_wav_header"]

# The header of a WAV file is normally 44 bytes; 64 KiB leaves room for LIST/INFO chunks before `data`.
HEAD_BYTES = 64 * 1024
# Writers that stream a WAV (espeak-ng --stdout, ffmpeg to a pipe) cannot know the data size and put a
# placeholder near 2**31 or 2**32 there; the bytes actually received then decide.
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)

# Typical bitrates (bits per second) for estimating the length of compressed media; a stand-in only needs a
# plausible figure, and the transcript it returns says that it is an estimate.
_BITRATES: tuple[tuple[str, int], ...] = (
    ("audio/flac", 700_000),
    ("audio/x-flac", 700_000),
    ("audio/ogg", 64_000),
    ("audio/opus", 64_000),
    ("audio/webm", 64_000),
    ("audio/", 128_000),
    ("video/", 1_500_000),
)
_DEFAULT_BITRATE = 128_000


class CorruptMedia(Exception):
    """The media says what it is (a RIFF/WAVE header) but its structure is broken."""


@dataclass(frozen=True, slots=True)
class WavHeader:
    channels: int
    sample_rate: int
    byte_rate: int
    data_offset: int
    data_size: int

    def seconds(self, total_bytes: int) -> float:
        received = max(0, total_bytes - self.data_offset)
        size = received if self.data_size in _UNKNOWN_SIZES else min(self.data_size, received)
        return size / self.byte_rate


def parse_wav_header(head: bytes) -> WavHeader | None:
    """The fmt and data chunks of a RIFF/WAVE file from its first `HEAD_BYTES` bytes (the whole file when it is
    shorter). None when it is not a WAV, or its data chunk starts beyond those bytes; `CorruptMedia` when broken."""
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
        return None
    offset = 12
    fmt: tuple[int, int, int] | None = None
    while offset + 8 <= len(head):
        chunk_id = head[offset : offset + 4]
        (size,) = struct.unpack_from("<I", head, offset + 4)
        body = offset + 8
        if chunk_id == b"fmt ":
            if size < 16 or body + 16 > len(head):
                raise CorruptMedia("WAV fmt chunk is truncated")
            _format, channels, sample_rate, byte_rate = struct.unpack_from("<HHII", head, body)
            if channels == 0 or sample_rate == 0 or byte_rate == 0:
                raise CorruptMedia("WAV fmt chunk has zero channels, sample rate or byte rate")
            fmt = (channels, sample_rate, byte_rate)
        elif chunk_id == b"data":
            if fmt is None:
                raise CorruptMedia("WAV data chunk comes before its fmt chunk")
            return WavHeader(*fmt, data_offset=body, data_size=size)
        # Chunks are padded to an even length.
        offset = body + size + (size & 1)
    if len(head) < HEAD_BYTES:
        # The whole file fitted in `head`, so the data chunk is not merely beyond what we keep.
        raise CorruptMedia("WAV file has no data chunk")
    return None  # the data chunk starts beyond the bytes we keep: estimate instead


def estimated_seconds(size: int, content_type: str) -> float:
    mime = content_type.split(";", 1)[0].strip().lower()
    bitrate = next((rate for prefix, rate in _BITRATES if mime.startswith(prefix)), _DEFAULT_BITRATE)
    return size * 8 / bitrate


class MediaProbe:
    """Fed the media chunk by chunk; keeps only a hash, a count and the first `HEAD_BYTES` bytes."""

    def __init__(self) -> None:
        self.size = 0
        self._sha256 = hashlib.sha256()
        self._head = bytearray()

    def feed(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self._sha256.update(chunk)
        if len(self._head) < HEAD_BYTES:
            self._head += chunk[: HEAD_BYTES - len(self._head)]

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()

    def duration(self, content_type: str) -> tuple[float, bool]:
        """Seconds of media and whether that figure is exact. Raises `CorruptMedia` for a broken WAV."""
        wav = parse_wav_header(bytes(self._head))
        if wav is not None:
            return wav.seconds(self.size), True
        return estimated_seconds(self.size, content_type), False
