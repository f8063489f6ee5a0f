"""Files are known by their first bytes: real headers of each accepted format, and renamed files that are not."""

from __future__ import annotations

import io
import wave

import pytest

from bot.media.sniff import SNIFF_BYTES, describe, sniff


def wav_head() -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x00\x01" * 2000)
    return out.getvalue()


def box(kind: bytes, body: bytes) -> bytes:
    return (8 + len(body)).to_bytes(4, "big") + kind + body


def ftyp(brand: bytes, *compatible: bytes) -> bytes:
    return box(b"ftyp", brand + b"\x00\x00\x02\x00" + b"".join(compatible)) + box(b"free", b"")


def mp3_frames(count: int = 3) -> bytes:
    # MPEG-1 layer III, 128 kbit/s, 44.1 kHz, no padding: 144 * 128000 // 44100 = 417 bytes a frame.
    return (b"\xff\xfb\x90\x64" + b"\x00" * 413) * count


def adts_frames(count: int = 3, length: int = 371) -> bytes:
    header = bytes([0xFF, 0xF1, 0x50, 0x80 | (length >> 11), (length >> 3) & 0xFF, ((length & 7) << 5) | 0x1F, 0xFC])
    return (header + b"\x21" * (length - 7)) * count


def ogg_page(first_packet: bytes) -> bytes:
    header = b"OggS\x00\x02" + b"\x00" * 8 + b"\x01\x00\x00\x00" + b"\x00" * 4 + b"\x00" * 4 + b"\x01"
    return header + bytes([len(first_packet)]) + first_packet


ACCEPTED = [
    ("talk.wav", wav_head(), "audio/wav", "audio"),
    ("talk.mp3", b"ID3\x04\x00\x00\x00\x00\x01\x00TIT2" + b"\x00" * 64, "audio/mpeg", "audio"),
    ("talk.mp3", mp3_frames(), "audio/mpeg", "audio"),  # no ID3 tag: frames from the first byte
    ("talk.flac", b"fLaC\x00\x00\x00\x22" + b"\x10" * 34, "audio/flac", "audio"),
    ("talk.opus", ogg_page(b"OpusHead\x01\x01\x38\x01\x80\xbb\x00\x00\x00\x00\x00"), "audio/ogg", "audio"),
    ("talk.ogg", ogg_page(b"\x01vorbis" + b"\x00" * 22), "audio/ogg", "audio"),
    ("clip.ogv", ogg_page(b"\x80theora\x03\x02\x01" + b"\x00" * 30), "video/ogg", "video"),
    ("talk.m4a", ftyp(b"M4A ", b"M4A ", b"mp42", b"isom"), "audio/mp4", "audio"),
    ("clip.mp4", ftyp(b"isom", b"isom", b"iso2", b"avc1", b"mp41"), "video/mp4", "video"),
    ("clip.mp4", ftyp(b"mp42", b"mp42", b"isom"), "video/mp4", "video"),
    ("clip.mov", ftyp(b"qt  ", b"qt  "), "video/quicktime", "video"),
    ("clip.3gp", ftyp(b"3gp4", b"isom", b"3gp4"), "video/3gpp", "video"),
    ("clip.webm", b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\x82\x84webm", "video/webm", "video"),
    ("clip.mkv", b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\x82\x88matroska", "video/webm", "video"),
    ("talk.aac", adts_frames(), "audio/aac", "audio"),
    ("talk.aiff", b"FORM\x00\x00\x10\x00AIFFCOMM", "audio/aiff", "audio"),
    ("clip.avi", b"RIFF\x00\x10\x00\x00AVI LIST", "video/x-msvideo", "video"),
    # The extension is the sender's word; the bytes decide.
    ("voice-note.txt", wav_head(), "audio/wav", "audio"),
]


@pytest.mark.parametrize(("filename", "head", "content_type", "kind"), ACCEPTED)
def test_accepted_formats_are_known_by_their_first_bytes(
    filename: str, head: bytes, content_type: str, kind: str
) -> None:
    assert sniff(head, filename) == (content_type, kind)


@pytest.mark.parametrize(
    ("filename", "content_type"),
    [
        ("notes.txt", "text/plain"),
        ("NOTES.MD", "text/markdown"),
        ("captions.vtt", "text/vtt"),
        ("captions.srt", "application/x-subrip"),
    ],
)
def test_utf8_text_takes_its_type_from_the_extension(filename: str, content_type: str) -> None:
    head = "WEBVTT\n\n00:00.000 --> 00:01.000\nGrüße, 你好 👋\n".encode()
    assert sniff(head, filename) == (content_type, "text")
    assert sniff("\ufeffWith a byte order mark".encode(), filename) == (content_type, "text")


def test_a_head_cut_inside_a_multibyte_character_is_still_text() -> None:
    text = ("é" * SNIFF_BYTES).encode()[: SNIFF_BYTES - 1]  # ends on the first byte of a two-byte character
    assert sniff(text, "notes.txt") == ("text/plain", "text")


@pytest.mark.parametrize(
    ("filename", "head", "what"),
    [
        ("notes.txt", b"hello\x00world", "binary data of an unknown kind"),
        ("notes.txt", "café".encode("latin-1") + b" au lait", "binary data of an unknown kind"),
        ("notes.txt", "UTF-16 text".encode("utf-16"), "binary data of an unknown kind"),
        ("table.csv", b"a,b,c\n1,2,3\n", "a text file named .csv"),
        ("notes", b"no extension at all", "a text file without an extension"),
        ("empty.txt", b"", "an empty file"),
    ],
)
def test_text_must_be_utf8_without_nul_and_have_a_text_extension(filename: str, head: bytes, what: str) -> None:
    assert sniff(head, filename) is None
    assert describe(head, filename) == what


@pytest.mark.parametrize(
    ("head", "what"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "a PNG image"),
        (b"PK\x03\x04\x14\x00\x00\x00\x08\x00", "a ZIP archive (or an Office document)"),
        (b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8, "an ELF executable"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "a JPEG image"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3", "a PDF document"),
        (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00", "a Windows executable"),
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00", "a gzip archive"),
        (b"#!/bin/sh\nrm -rf /\n", "a script"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "a WebP image"),
        (ftyp(b"heic", b"mif1", b"heic"), "a HEIF/AVIF image"),
        (ftyp(b"avif", b"avif", b"mif1"), "a HEIF/AVIF image"),
    ],
)
def test_a_renamed_file_is_refused_and_named_for_what_it_is(head: bytes, what: str) -> None:
    assert sniff(head, "song.mp3") is None
    assert describe(head, "song.mp3") == what


def test_a_frame_sync_alone_is_not_enough_for_mp3_or_aac() -> None:
    # 0xFF 0xE? starts a UTF-16 byte order mark, noise, or a frame: only a chain of frames counts.
    assert sniff(mp3_frames(1) + b"\x00" * 100, "x.mp3") is None  # no second frame where the first one ends
    assert sniff(adts_frames(1) + b"\x00" * 100, "x.aac") is None
    assert sniff(b"\xff\xea" + mp3_frames()[2:], "x.mp3") is None  # version 01 is reserved
    assert sniff(b"\xff\xfb\xf0" + mp3_frames()[3:], "x.mp3") is None  # bitrate index 1111
    assert sniff(b"\xff\xfb\x9c" + mp3_frames()[3:], "x.mp3") is None  # sampling rate index 11
    # A head cut inside the first frame is a large file's: the one header must do.
    assert sniff(adts_frames(1, length=6000)[:SNIFF_BYTES], "x.aac") == ("audio/aac", "audio")
