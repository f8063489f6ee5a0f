"""Speech to text on this machine: the `Transcriber` port over pocketsphinx (CMU Sphinx, whose English acoustic
model, dictionary and language model come inside its wheel), the embedded default's transcriber when no Deepgram
key is set. It reads WAV itself and other formats through ffmpeg when that is installed.

Recognition is CPU work in C that holds the GIL for seconds at a time, so a thread would still stall the event loop:
it runs in a child process (`python -m bot.media.offline`, 16 kHz PCM in, one JSON line per utterance out), one
per file, killed if the step is cancelled. Decoding the audio (WAV parsing, resampling) runs in a thread."""

from __future__ import annotations

import array
import asyncio
import io
import json
import shutil
import subprocess
import sys
import tempfile
import wave
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import IO, Any

import httpx

from bot.errors import PermanentUpstreamError, TransientUpstreamError
from bot.ports import Transcript, Utterance

SERVICE = "offline"
RATE = 16_000  # the acoustic model's sampling rate
# Speech is cut into utterances at pauses (pocketsphinx's voice activity detector), each decoded on its own, so a
# transcript has times and a long recording never sits in the decoder whole.
VAD_WINDOW_S = 0.3
# The decoder's cepstral mean starts from a generic guess and adapts as it hears: without a first pass over some of
# the recording to set it, the first words are lost (measured: "the barn and" for "good morning").
PRIME_S = 30
SPOOL_BYTES = 16 * 1024 * 1024  # held in memory up to this, then in a temporary file
FFMPEG_TIMEOUT_S = 600


@dataclass(frozen=True, slots=True)
class Audio:
    pcm: bytes  # 16-bit signed little-endian mono at RATE
    duration_s: float


class OfflineTranscriber:
    """`Transcriber` with pocketsphinx, in a child process per file."""

    def __init__(self, *, language: str = "en") -> None:
        self.language = language

    def __repr__(self) -> str:
        return "OfflineTranscriber(pocketsphinx, en-us)"

    async def transcribe_url(self, url: str, *, content_type: str) -> Transcript:
        async def chunks() -> AsyncIterator[bytes]:
            try:
                async with httpx.AsyncClient(timeout=60) as http, http.stream("GET", url) as response:
                    if response.status_code >= 400:
                        raise TransientUpstreamError(SERVICE, f"fetching the media: HTTP {response.status_code}")
                    async for chunk in response.aiter_bytes():
                        yield chunk
            except httpx.TransportError as exc:
                raise TransientUpstreamError(SERVICE, f"fetching the media: {type(exc).__name__}: {exc}") from exc

        return await self.transcribe_stream(chunks(), content_type=content_type)

    async def transcribe_stream(self, chunks: AsyncIterator[bytes], *, content_type: str) -> Transcript:
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
            async for chunk in chunks:
                spool.write(chunk)  # a local file (or memory): as the blob store's own local writes
            spool.seek(0)
            audio = await asyncio.to_thread(decode_audio, spool, content_type)
        utterances = tuple(
            Utterance(speaker=0, start_s=start, end_s=end, text=_sentence(text))
            for start, end, text in await recognise_in_child(audio.pcm)
        )
        return Transcript(
            text=" ".join(u.text for u in utterances),
            duration_s=audio.duration_s,
            utterances=utterances,
            language=self.language,
        )


async def recognise_in_child(pcm: bytes) -> list[tuple[float, float, str]]:
    """(start s, end s, words) per utterance, from `python -m bot.media.offline` fed `pcm`."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.media.offline",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await child.communicate(pcm)
    except BaseException:
        if child.returncode is None:
            child.kill()
            await child.wait()
        raise
    if child.returncode != 0:
        said = " ".join(err.decode(errors="replace").split())[-300:]
        raise TransientUpstreamError(SERVICE, f"pocketsphinx exited with {child.returncode}: {said}")
    found = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    return [(float(u["start"]), float(u["end"]), str(u["text"])) for u in found]


def recognise(pcm: bytes) -> Iterator[tuple[float, float, str]]:
    """Utterances of 16 kHz mono PCM, cut at pauses and decoded one by one (in the child process)."""
    from pocketsphinx import Decoder, Segmenter

    decoder: Any = Decoder(samprate=RATE, loglevel="FATAL")
    decoder.start_utt()
    decoder.process_raw(pcm[: PRIME_S * RATE * 2], full_utt=True)
    decoder.end_utt()
    for segment in Segmenter(window=VAD_WINDOW_S, sample_rate=RATE).segment(io.BytesIO(pcm)):
        decoder.start_utt()
        decoder.process_raw(segment.pcm, full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
        text = hypothesis.hypstr.strip() if hypothesis is not None else ""
        if text:
            yield float(segment.start_time), float(segment.end_time), text


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


# -- audio -----------------------------------------------------------------------------------------------------


def decode_audio(source: IO[bytes], content_type: str) -> Audio:
    """16 kHz mono PCM from a WAV file (read here) or any format ffmpeg reads (when ffmpeg is on PATH)."""
    head = source.read(12)
    source.seek(0)
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        try:
            return _from_wav(source)
        except (wave.Error, EOFError) as exc:
            if shutil.which("ffmpeg") is None:
                raise _unreadable(f"this WAV file cannot be read ({exc})") from exc
            source.seek(0)
    if shutil.which("ffmpeg") is None:
        raise _unreadable(
            f"it reads WAV files, and this is {content_type or 'another format'}; install ffmpeg for other formats, "
            "or set DEEPGRAM_API_KEY"
        )
    return _from_ffmpeg(source)


def _from_wav(source: IO[bytes]) -> Audio:
    with wave.open(source, "rb") as wav:
        channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
        frames = wav.readframes(wav.getnframes())
    if wav.getcomptype() != "NONE":
        raise wave.Error(f"compressed WAV ({wav.getcomptype()})")
    samples = _to_int16(frames, width)
    if channels > 1:
        samples = _mono(samples, channels)
    duration = len(samples) / rate if rate else 0.0
    return Audio(resample(samples, rate, RATE).tobytes(), duration)


def _to_int16(frames: bytes, width: int) -> array.array[int]:
    if width == 2:
        samples = array.array("h")
        samples.frombytes(frames)
        if sys.byteorder == "big":
            samples.byteswap()
        return samples
    if width == 1:  # unsigned 8-bit
        return array.array("h", ((b - 128) << 8 for b in frames))
    if width in (3, 4):  # the top two bytes of each little-endian sample
        return array.array("h", (int.from_bytes(frames[i + width - 2 : i + width], "little", signed=True)
                                 for i in range(0, len(frames) - width + 1, width)))  # fmt: skip
    raise wave.Error(f"{width * 8}-bit samples")


def _mono(samples: array.array[int], channels: int) -> array.array[int]:
    return array.array("h", (sum(samples[i : i + channels]) // channels for i in range(0, len(samples), channels)))


def resample(samples: array.array[int], source_rate: int, target_rate: int) -> array.array[int]:
    """Linear interpolation between neighbouring samples: enough for speech recognition (espeak-ng's 22,050 Hz)."""
    if source_rate == target_rate or not samples:
        return samples
    count = int(len(samples) * target_rate / source_rate)
    step = source_rate / target_rate
    last = len(samples) - 1
    out = array.array("h", bytes(2 * count))
    for i in range(count):
        x = i * step
        j = int(x)
        fraction = x - j
        following = samples[j + 1] if j < last else samples[j]
        out[i] = int(samples[j] + (following - samples[j]) * fraction)
    return out


def _from_ffmpeg(source: IO[bytes]) -> Audio:
    command = ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", "pipe:0", "-f", "s16le", "-ac", "1", "-ar", str(RATE),
               "pipe:1"]  # fmt: skip
    try:
        done = subprocess.run(command, stdin=source, capture_output=True, timeout=FFMPEG_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise TransientUpstreamError(SERVICE, f"ffmpeg took over {FFMPEG_TIMEOUT_S} s") from exc
    if done.returncode != 0:
        said = " ".join(done.stderr.decode(errors="replace").split())[:300]
        raise _unreadable(f"ffmpeg could not decode it ({said or f'exit {done.returncode}'})")
    return Audio(done.stdout, len(done.stdout) / 2 / RATE)


def _unreadable(why: str) -> PermanentUpstreamError:
    return PermanentUpstreamError(SERVICE, why, f"The offline transcriber could not read this file: {why}.")


if __name__ == "__main__":
    for start, end, text in recognise(sys.stdin.buffer.read()):
        print(json.dumps({"start": round(start, 2), "end": round(end, 2), "text": text}), flush=True)
