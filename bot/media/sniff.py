"""What a file is, from its first bytes: the platform's MIME type and the file's extension are the sender's word,
and a renamed executable or archive must not reach the transcriber or the model."""

from __future__ import annotations

import codecs
from pathlib import PurePosixPath
from typing import Literal

Kind = Literal["audio", "video", "text"]

# Enough for every signature below and for a fair look at a text file's encoding.
SNIFF_BYTES = 4096

ACCEPTED = "audio, video, or .txt/.md/.vtt/.srt text"

TEXT_TYPES = {
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".vtt": "text/vtt",
    ".srt": "application/x-subrip",
}

# ISO base media (MP4 family) major brands that are still images, not audio or video.
_IMAGE_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"})
_AUDIO_BRANDS = frozenset({b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "})

# Signatures of common files we refuse, so the refusal can say what the file looked like.
_KNOWN_OTHERS: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"PK\x05\x06", "an empty ZIP archive"),
    (b"\x7fELF", "an ELF executable"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"BZh", "a bzip2 archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"\x28\xb5\x2f\xfd", "a zstd archive"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O executable"),
    (b"\xca\xfe\xba\xbe", "a Mach-O or Java class file"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Office document"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"#!", "a script"),
)
# Two-byte signatures also start ordinary text, so they are tried only on bytes that are not text.
_WEAK_OTHERS: tuple[tuple[bytes, str], ...] = ((b"MZ", "a Windows executable"), (b"BM", "a BMP image"))


def sniff(head: bytes, filename: str = "") -> tuple[str, Kind] | None:
    """The content type and kind of a file starting with `head` (its first `SNIFF_BYTES`, or all of a shorter
    file), or None when it is not audio, video or text we take. Only text needs `filename`: plain text has no
    signature, so its extension picks the type, and only once the bytes look like UTF-8 text."""
    return _media(head) or _text(head, filename)


def describe(head: bytes, filename: str = "") -> str:
    """What the bytes look like, for telling the user why a file was refused ("a PNG image")."""
    if not head:
        return "an empty file"
    found = sniff(head, filename)
    if found is not None:
        return found[0]
    if head[4:8] == b"ftyp" and head[8:12] in _IMAGE_BRANDS:
        return "a HEIF/AVIF image"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image"
    for magic, what in _KNOWN_OTHERS:
        if head.startswith(magic):
            return what
    if _looks_like_text(head):
        suffix = PurePosixPath(filename).suffix.lower()
        return f"a text file named {suffix}" if suffix else "a text file without an extension"
    for magic, what in _WEAK_OTHERS:
        if head.startswith(magic):
            return what
    return "binary data of an unknown kind"


def _media(head: bytes) -> tuple[str, Kind] | None:
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "audio/wav", "audio"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video/x-msvideo", "video"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "audio/aiff", "audio"
    if head[:4] == b"fLaC":
        return "audio/flac", "audio"
    if head[:4] == b"OggS":
        # The first page holds the first codec header; Theora is the only video codec seen in Ogg in practice.
        return ("video/ogg", "video") if b"\x80theora" in head[:64] else ("audio/ogg", "audio")
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "video/webm", "video"
    if head[4:8] == b"ftyp":
        return _iso_media(head[8:12])
    if head[:3] == b"ID3" and len(head) >= 10 and head[3] in (2, 3, 4) and all(b < 0x80 for b in head[6:10]):
        return "audio/mpeg", "audio"
    if _is_adts(head):
        return "audio/aac", "audio"
    if _is_mpeg_audio_frame(head):
        return "audio/mpeg", "audio"
    return None


def _iso_media(brand: bytes) -> tuple[str, Kind] | None:
    if brand in _IMAGE_BRANDS or brand == b"crx ":  # HEIC/AVIF photos and Canon raw images share the box format
        return None
    if brand in _AUDIO_BRANDS:
        return "audio/mp4", "audio"
    if brand == b"qt  ":
        return "video/quicktime", "video"
    if brand.startswith(b"3g"):
        return "video/3gpp", "video"
    return "video/mp4", "video"


def _is_adts(head: bytes) -> bool:
    # A sync word alone is two bytes that noise or a UTF-16 byte order mark can match: the frame it starts must
    # be followed by another where its length says, unless that lies past a full head (frames reach 8 KiB).
    length = _adts_frame_length(head)
    if length is None:
        return False
    if len(head) < length + 7:
        return len(head) >= SNIFF_BYTES
    return _adts_frame_length(head[length:]) is not None


def _adts_frame_length(frame: bytes) -> int | None:
    # 12 sync bits, MPEG version, layer 00 (always, in ADTS), a sampling index below 13, a 13-bit frame length.
    if len(frame) < 7 or frame[0] != 0xFF or frame[1] & 0xF6 != 0xF0 or (frame[2] >> 2) & 0x0F >= 13:
        return None
    length = ((frame[3] & 0x03) << 11) | (frame[4] << 3) | (frame[5] >> 5)
    return length if length >= 7 else None


def _is_mpeg_audio_frame(head: bytes) -> bool:
    # As for ADTS: the first frame must lead to a second (frames are at most 1441 bytes, so a full head has it).
    length = _mpeg_frame_length(head)
    if length is None:
        return False
    if len(head) < length + 4:
        return len(head) >= SNIFF_BYTES
    return _mpeg_frame_length(head[length:]) is not None


_MPEG_BITRATES = {  # kbit/s by (MPEG-1?, layer bits), index 1-14; 0 is "free format", 15 is invalid
    (True, 0b11): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 0b10): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 0b01): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 0b11): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 0b10): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 0b01): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MPEG_RATES = {0b11: (44100, 48000, 32000), 0b10: (22050, 24000, 16000), 0b00: (11025, 12000, 8000)}


def _mpeg_frame_length(frame: bytes) -> int | None:
    # 11 sync bits (0xFFE), then a header with none of its reserved values: version 01, layer 00, bitrate 0000
    # (free format, too rare to be worth the doubt) and 1111, sampling rate 11.
    if len(frame) < 4 or frame[0] != 0xFF or frame[1] & 0xE0 != 0xE0:
        return None
    version, layer = (frame[1] >> 3) & 0b11, (frame[1] >> 1) & 0b11
    bitrate_index, rate_index, padding = frame[2] >> 4, (frame[2] >> 2) & 0b11, (frame[2] >> 1) & 1
    if version == 0b01 or layer == 0b00 or bitrate_index in (0, 15) or rate_index == 0b11:
        return None
    mpeg1 = version == 0b11
    bitrate = _MPEG_BITRATES[(mpeg1, layer)][bitrate_index - 1] * 1000
    rate = _MPEG_RATES[version][rate_index]
    if layer == 0b11:  # layer I counts in 4-byte slots
        return (12 * bitrate // rate + padding) * 4
    if layer == 0b01 and not mpeg1:  # layer III of MPEG-2 and 2.5 has half the samples per frame
        return 72 * bitrate // rate + padding
    return 144 * bitrate // rate + padding


def _text(head: bytes, filename: str) -> tuple[str, Kind] | None:
    content_type = TEXT_TYPES.get(PurePosixPath(filename).suffix.lower())
    if content_type is None or not _looks_like_text(head):
        return None
    return content_type, "text"


def _looks_like_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        # Not final: the head may end in the middle of a multi-byte character.
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True
