"""Durations the stand-in Deepgram reports: exact for WAV (however it was written), estimated otherwise."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from sandbox.media_probe import HEAD_BYTES, CorruptMedia, MediaProbe, parse_wav_header


def riff(*chunks: tuple[bytes, bytes], data_size: int | None = None) -> bytes:
    body = b"WAVE"
    for chunk_id, payload in chunks:
        size = data_size if chunk_id == b"data" and data_size is not None else len(payload)
        body += chunk_id + struct.pack("<I", size) + payload + (b"\x00" if len(payload) % 2 else b"")
    return b"RIFF" + struct.pack("<I", len(body)) + body


def fmt(channels: int = 1, rate: int = 16_000, bits: int = 16) -> tuple[bytes, bytes]:
    block = channels * bits // 8
    return b"fmt ", struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, bits)


def probed(data: bytes, content_type: str = "audio/wav", chunk: int = 1000) -> tuple[float, bool]:
    probe = MediaProbe()
    for i in range(0, len(data), chunk):
        probe.feed(data[i : i + chunk])
    assert probe.size == len(data)
    return probe.duration(content_type)


def test_wav_duration_comes_from_the_header() -> None:
    data = riff(fmt(channels=2, rate=8000), (b"data", b"\x00" * 32_000))
    assert probed(data) == (1.0, True)


def test_odd_chunks_before_data_are_skipped_with_their_padding() -> None:
    data = riff(fmt(), (b"LIST", b"INFOabc"), (b"data", b"\x00" * 16_000))
    assert probed(data) == (0.5, True)


def test_streamed_wav_with_a_placeholder_size_uses_the_bytes_received() -> None:
    data = riff(fmt(), (b"data", b"\x00" * 48_000), data_size=0x7FFFF000)
    assert probed(data) == (1.5, True)
    assert probed(riff(fmt(), (b"data", b"\x00" * 8000), data_size=0xFFFFFFFF)) == (0.25, True)


def test_broken_wavs_are_corrupt() -> None:
    with pytest.raises(CorruptMedia):
        probed(riff((b"data", b"\x00" * 100)))  # data before fmt
    with pytest.raises(CorruptMedia):
        probed(riff(fmt()))  # no data at all
    with pytest.raises(CorruptMedia):
        probed(riff((b"fmt ", b"\x01\x00")))  # truncated fmt


def test_data_chunk_beyond_the_kept_head_falls_back_to_an_estimate() -> None:
    data = riff(fmt(), (b"LIST", b"x" * HEAD_BYTES), (b"data", b"\x00" * 1000))
    assert parse_wav_header(data[:HEAD_BYTES]) is None
    seconds, exact = probed(data, "audio/wav")
    assert not exact
    assert seconds == pytest.approx(len(data) * 8 / 128_000)


@pytest.mark.parametrize(
    ("content_type", "bitrate"),
    [("audio/mpeg", 128_000), ("audio/ogg; codecs=opus", 64_000), ("video/mp4", 1_500_000), ("", 128_000)],
)
def test_other_media_are_estimated_from_size(content_type: str, bitrate: int) -> None:
    seconds, exact = probed(b"\xff\xfb" * 50_000, content_type)
    assert not exact
    assert seconds == pytest.approx(100_000 * 8 / bitrate)


def test_espeak_ng_wavs_from_a_file_and_from_a_pipe(tmp_path: Path) -> None:
    path = tmp_path / "hello.wav"
    subprocess.run(["espeak-ng", "-w", str(path), "hello world"], check=True)
    piped = subprocess.run(["espeak-ng", "--stdout", "hello world"], check=True, capture_output=True).stdout
    from_file, exact = probed(path.read_bytes())
    assert exact
    assert 0.5 < from_file < 3
    # The piped one has a placeholder data size: the same speech must still measure the same.
    same_speech: tuple[object, bool] = (pytest.approx(from_file), True)
    assert probed(piped) == same_speech
