"""The offline transcriber (pocketsphinx) on real speech from espeak-ng: what it hears of a known paragraph, as a
word error rate, and the audio it can and cannot read."""

from __future__ import annotations

import asyncio
import io
import re
import shutil
import subprocess
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.errors import PermanentUpstreamError
from bot.media.offline import RATE, OfflineTranscriber, decode_audio

PARAGRAPH = (
    "Good morning everyone. The quarterly budget review is scheduled for next Tuesday morning. Please send your "
    "slides to the finance team before Friday. We will discuss the new office and the hiring plan for next year."
)
# espeak-ng's Klatt voice: of its voices, the one pocketsphinx's US model hears best (its default voice is British).
VOICE = "en-us+klatt5"
MAX_WER = 0.4


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def word_error_rate(reference: list[str], heard: list[str]) -> float:
    """(substitutions + deletions + insertions) / reference words: Levenshtein distance over words."""
    row = list(range(len(heard) + 1))
    for i in range(1, len(reference) + 1):
        diagonal, row[0] = row[0], i
        for j in range(1, len(heard) + 1):
            cost = diagonal + (reference[i - 1] != heard[j - 1])
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, cost)
    return row[-1] / len(reference)


def speak(text: str, path: Path, *options: str) -> Path:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.fail("the media tests need espeak-ng to speak a real audio file: apt-get install espeak-ng")
    subprocess.run([espeak, *options, "-w", str(path), text], check=True)
    return path


async def chunks_of(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_word_error_rate_counts_substitutions_deletions_and_insertions() -> None:
    assert word_error_rate(["a", "b", "c", "d"], ["a", "b", "c", "d"]) == 0
    assert word_error_rate(["a", "b", "c", "d"], ["a", "x", "c"]) == 0.5  # one substituted, one missing
    assert word_error_rate(["a", "b"], ["a", "b", "c", "d"]) == 1.0


async def test_a_spoken_paragraph_is_transcribed_offline_with_most_of_its_words(tmp_path: Path) -> None:
    recording = speak(PARAGRAPH, tmp_path / "talk.wav", "-v", VOICE)
    transcriber = OfflineTranscriber()
    started = time.monotonic()
    transcript = await transcriber.transcribe_stream(chunks_of(recording.read_bytes()), content_type="audio/wav")
    took = time.monotonic() - started
    wer = word_error_rate(words(PARAGRAPH), words(transcript.text))
    print(f"\noffline transcript ({took:.1f} s for {transcript.duration_s:.1f} s of audio), WER {wer:.1%}: "
          f"{transcript.text!r}")  # fmt: skip
    assert wer < MAX_WER, f"word error rate {wer:.1%}: {transcript.text!r}"
    assert {"budget", "tuesday", "friday", "finance"} <= set(words(transcript.text))
    with wave.open(str(recording)) as wav:
        seconds = wav.getnframes() / wav.getframerate()
    assert transcript.duration_s == pytest.approx(seconds, abs=0.01)
    assert transcript.utterances
    assert transcript.utterances[0].start_s < 1.0
    assert transcript.utterances[-1].end_s <= transcript.duration_s + 0.1
    assert transcript.language == "en"


async def test_recognition_leaves_the_event_loop_free(tmp_path: Path) -> None:
    recording = speak(PARAGRAPH, tmp_path / "talk.wav", "-v", VOICE).read_bytes()
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    started = time.monotonic()
    await OfflineTranscriber().transcribe_stream(chunks_of(recording), content_type="audio/wav")
    took = time.monotonic() - started
    ticker.cancel()
    # A blocked loop would tick only once or twice; a free one about once per 10 ms (slower on a busy machine).
    assert ticks > took / 0.01 * 0.3, f"{ticks} ticks in {took:.1f} s"


def test_wav_of_any_rate_width_and_channel_count_becomes_16_khz_mono() -> None:
    source = io.BytesIO()
    with wave.open(source, "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(1)
        wav.setframerate(8000)
        wav.writeframes(bytes([128, 255] * 8000))  # 1 s: one channel silent, the other at full scale
    source.seek(0)
    audio = decode_audio(source, "audio/wav")
    assert audio.duration_s == 1.0
    assert len(audio.pcm) == 2 * RATE
    assert abs(int.from_bytes(audio.pcm[100:102], "little", signed=True) - (127 << 8) // 2) <= 1


def test_another_format_without_ffmpeg_is_refused_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(PermanentUpstreamError) as refused:
        decode_audio(io.BytesIO(b"ID3\x04" + bytes(200)), "audio/mpeg")
    assert refused.value.user_message == (
        "The offline transcriber could not read this file: it reads WAV files, and this is audio/mpeg; "
        "install ffmpeg for other formats, or set DEEPGRAM_API_KEY."
    )
