"""DeepgramTranscriber against the stand-in Deepgram over HTTP: media from a moto S3 presigned URL or streamed from
real speech files, and every failure translated into our error tree."""

from __future__ import annotations

import asyncio
import io
import logging
import wave
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from deepgram import ListenV1Response

from bot.config import Settings
from bot.errors import PermanentUpstreamError, TransientUpstreamError
from bot.media.transcribe import (
    NOT_CONFIGURED,
    UNREADABLE_ANSWER,
    DeepgramTranscriber,
    deepgram_environment,
    retry_after_s,
    transcriber_for,
    transcript_from_response,
)
from bot.ports import Transcriber, Utterance
from jobs.stand_ins import stand_in_transcriber
from sandbox.deepgram_server import ListenOptions, Said, StandInDeepgram, listen_response
from sandbox.serving import LocalServer
from tests.conftest import wait_for
from tests.s3_fixtures import S3Server

KEY = "dg-secret-key-0123456789abcdef"
BUCKET = "media"


@dataclass(frozen=True)
class S3:
    client: Any
    endpoint: str

    def put(self, key: str, body: bytes) -> str:
        """Store `body` and return a presigned GET URL for it."""
        self.client.put_object(Bucket=BUCKET, Key=key, Body=body, ContentType="audio/wav")
        return str(self.client.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": key}))


@pytest.fixture(scope="module")
def dg_s3(s3_server: S3Server) -> Iterator[S3]:
    """The tests' S3 endpoint (moto's server) with one bucket."""
    client = s3_server.client()
    client.create_bucket(Bucket=BUCKET)
    yield S3(client, s3_server.endpoint_url)
    client.close()


@pytest.fixture
async def dg_server() -> AsyncIterator[StandInDeepgram]:
    async with StandInDeepgram(api_key=KEY) as server:
        yield server


@pytest.fixture
async def transcriber(dg_server: StandInDeepgram) -> AsyncIterator[DeepgramTranscriber]:
    async with DeepgramTranscriber(KEY, dg_server.base_url, timeout_s=5) as t:
        yield t


@pytest.fixture(scope="module")
def speech(speech_wav: Path) -> bytes:
    """Real speech (espeak-ng), as bytes."""
    return speech_wav.read_bytes()


def wav_bytes(seconds: float, rate: int = 16_000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(2 * int(seconds * rate)))
    return out.getvalue()


def wav_seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data), "rb") as w:
        return w.getnframes() / w.getframerate()


async def chunks_of(data: bytes, size: int = 4096) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def test_it_is_a_transcriber() -> None:
    transcriber: Transcriber = DeepgramTranscriber(KEY, "http://127.0.0.1:1")
    assert KEY not in repr(transcriber)


async def test_url_mode_with_a_presigned_s3_url(
    dg_s3: S3, dg_server: StandInDeepgram, transcriber: DeepgramTranscriber, speech: bytes
) -> None:
    url = await asyncio.to_thread(dg_s3.put, "calls/speech.wav", speech)

    transcript = await transcriber.transcribe_url(url, content_type="audio/wav")

    assert transcript.duration_s == pytest.approx(wav_seconds(speech), abs=1e-3)
    assert transcript.text.startswith("[stand-in transcription] This is not a real transcript.")
    assert f"{len(speech)} bytes received" in transcript.text
    assert [u.speaker for u in transcript.utterances] == [0, 1, 0]
    assert " ".join(u.text for u in transcript.utterances) == transcript.text
    assert all(0 <= u.start_s < u.end_s <= transcript.duration_s for u in transcript.utterances)
    assert transcript.language == ""
    [record] = dg_server.requests
    assert record.url == url
    assert record.media_bytes == len(speech)
    assert record.query == {
        "model": "nova-3", "smart_format": "true", "punctuate": "true", "utterances": "true", "diarize": "true",
    }  # fmt: skip


async def test_stream_mode_sends_the_file_while_it_is_read(
    dg_server: StandInDeepgram, transcriber: DeepgramTranscriber, speech: bytes
) -> None:
    sent = 0

    async def from_storage() -> AsyncIterator[bytes]:
        nonlocal sent
        async for chunk in chunks_of(speech):
            yield chunk
            sent += len(chunk)
            if sent == 4096:
                # Deepgram already has the request while most of the file is still unread: it is streamed.
                await wait_for(lambda: dg_server.requests, timeout_s=5)

    transcript = await transcriber.transcribe_stream(from_storage(), content_type="audio/wav")

    assert transcript.duration_s == pytest.approx(wav_seconds(speech), abs=1e-3)
    assert "[stand-in transcription]" in transcript.text
    [record] = dg_server.requests
    assert record.content_type == "audio/wav"
    assert record.body_bytes == len(speech)
    assert record.headers.get("Transfer-Encoding") == "chunked"


async def test_scripted_speech_becomes_utterances(dg_server: StandInDeepgram, transcriber: DeepgramTranscriber) -> None:
    dg_server.script([Said(0, "Welcome, everyone."), Said(1, "Thanks for having me."), Said(0, "Let's begin.")])

    transcript = await transcriber.transcribe_stream(chunks_of(wav_bytes(10.0)), content_type="audio/wav")

    assert transcript.text == "Welcome, everyone. Thanks for having me. Let's begin."
    assert [(u.speaker, u.text) for u in transcript.utterances] == [
        (0, "Welcome, everyone."), (1, "Thanks for having me."), (0, "Let's begin."),
    ]  # fmt: skip
    assert transcript.duration_s == 10.0


async def test_503_is_transient_with_retry_after_and_not_retried_by_the_sdk(
    dg_server: StandInDeepgram, transcriber: DeepgramTranscriber
) -> None:
    dg_server.fail_next(1, 503, retry_after=7)
    dg_server.fail_next(1, 429)
    with pytest.raises(TransientUpstreamError) as unavailable:
        await transcriber.transcribe_stream(chunks_of(wav_bytes(1.0)), content_type="audio/wav")
    with pytest.raises(TransientUpstreamError) as limited:
        await transcriber.transcribe_stream(chunks_of(wav_bytes(1.0)), content_type="audio/wav")

    assert unavailable.value.service == "deepgram"
    assert unavailable.value.retry_after_s == 7
    assert "HTTP 503 SERVICE_UNAVAILABLE" in unavailable.value.detail
    assert limited.value.retry_after_s is None
    assert [r.status for r in dg_server.requests] == [503, 429]
    # The next attempt (the workflow step's retry) goes through.
    assert (await transcriber.transcribe_stream(chunks_of(wav_bytes(1.0)), content_type="audio/wav")).text


async def test_timeouts_and_refused_connections_are_transient(dg_server: StandInDeepgram) -> None:
    dg_server.latency_s = 2.0
    async with DeepgramTranscriber(KEY, dg_server.base_url, timeout_s=0.3) as impatient:
        with pytest.raises(TransientUpstreamError, match=r"no answer within 0\.3 s"):
            await impatient.transcribe_stream(chunks_of(wav_bytes(1.0)), content_type="audio/wav")
    base_url = dg_server.base_url
    await dg_server.stop()
    async with DeepgramTranscriber(KEY, base_url, timeout_s=2) as lonely:
        with pytest.raises(TransientUpstreamError, match="connection failed"):
            await lonely.transcribe_url("http://127.0.0.1:1/x.wav", content_type="audio/wav")


async def test_unreadable_media_is_permanent_with_deepgrams_reason(
    dg_server: StandInDeepgram, transcriber: DeepgramTranscriber
) -> None:
    with pytest.raises(PermanentUpstreamError) as refused:
        await transcriber.transcribe_stream(chunks_of(b"RIFF\x04\x00\x00\x00WAVE"), content_type="audio/wav")
    assert refused.value.user_message == (
        "Deepgram could not read this file: Bad Request: failed to process audio: corrupt or unsupported data"
    )
    assert "HTTP 400 Bad Request" in refused.value.detail

    dg_server.fail_next(1, 400, err_msg="Could not process https://bucket.example/key?X-Amz-Signature=abc at all")
    with pytest.raises(PermanentUpstreamError) as refused:
        await transcriber.transcribe_stream(chunks_of(wav_bytes(0.5)), content_type="audio/wav")
    assert refused.value.user_message == "Deepgram could not read this file: Could not process <url> at all"


async def test_a_presigned_url_deepgram_cannot_fetch(dg_s3: S3, transcriber: DeepgramTranscriber) -> None:
    url = await asyncio.to_thread(
        dg_s3.client.generate_presigned_url, "get_object", Params={"Bucket": BUCKET, "Key": "never-stored.wav"}
    )
    with pytest.raises(PermanentUpstreamError) as refused:
        await transcriber.transcribe_url(url, content_type="audio/wav")
    assert refused.value.user_message == (
        "Deepgram could not download this file from storage: "
        "The remote server hosting the media returned a client error: 404 Not Found."
    )
    assert "REMOTE_CONTENT_ERROR" in refused.value.detail


async def test_a_wrong_key_is_permanent_and_never_shown(
    dg_server: StandInDeepgram, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "dg-wrong-key-fedcba9876543210"
    async with DeepgramTranscriber(wrong, dg_server.base_url, timeout_s=5) as misconfigured:
        with pytest.raises(PermanentUpstreamError) as refused:
            await misconfigured.transcribe_stream(chunks_of(wav_bytes(0.5)), content_type="audio/wav")
        assert wrong not in repr(misconfigured)
    assert refused.value.user_message == NOT_CONFIGURED
    assert "HTTP 401 INVALID_AUTH: Invalid credentials." in refused.value.detail
    shown = [str(refused.value), refused.value.detail, refused.value.user_message, repr(refused.value), caplog.text]
    shown += [str(refused.value.__cause__)]
    assert not [text for text in shown if wrong in text]


@pytest.mark.parametrize(
    ("status", "says"),
    [(402, "run out of credit"), (403, "not allowed"), (413, "too large"), (422, "could not read this file")],
)
async def test_other_refusals_say_what_went_wrong(
    dg_server: StandInDeepgram, transcriber: DeepgramTranscriber, status: int, says: str
) -> None:
    dg_server.fail_next(1, status)
    with pytest.raises(PermanentUpstreamError) as refused:
        await transcriber.transcribe_stream(chunks_of(wav_bytes(0.5)), content_type="audio/wav")
    assert says in refused.value.user_message
    assert f"HTTP {status}" in refused.value.detail


class NotDeepgram(LocalServer):
    """Something else answering at the Deepgram URL (a captive proxy): 200 with an HTML page."""

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/listen", self._page)
        return app

    async def _page(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        return web.Response(text="<html>Please sign in to the Wi-Fi</html>", content_type="text/html")


async def test_an_answer_that_is_not_deepgrams_is_permanent() -> None:
    async with NotDeepgram() as proxy, DeepgramTranscriber(KEY, f"http://127.0.0.1:{proxy.bound_port}") as lost:
        with pytest.raises(PermanentUpstreamError) as unreadable:
            await lost.transcribe_stream(chunks_of(wav_bytes(0.5)), content_type="audio/wav")
    assert unreadable.value.user_message == UNREADABLE_ANSWER
    assert "HTTP 200: <html>Please sign in" in unreadable.value.detail


async def test_errors_of_the_media_source_pass_through(transcriber: DeepgramTranscriber) -> None:
    async def failing_storage() -> AsyncIterator[bytes]:
        yield wav_bytes(0.1)
        raise TransientUpstreamError("s3", "read timed out")

    with pytest.raises(TransientUpstreamError) as failed:
        await transcriber.transcribe_stream(failing_storage(), content_type="audio/wav")
    assert failed.value.service == "s3"


def test_answers_without_utterances_are_grouped_by_speaker() -> None:
    said = [Said(0, "One two."), Said(0, "Three."), Said(1, "Four five six.")]
    body = listen_response(
        said, opts=ListenOptions(punctuate=True, diarize=True), duration_s=30.0, sha256="0" * 64, request_id="r"
    )
    transcript = transcript_from_response(ListenV1Response.model_validate(body))
    assert [(u.speaker, u.text) for u in transcript.utterances] == [(0, "One two. Three."), (1, "Four five six.")]
    assert transcript.utterances[0].start_s == 0.0


def test_a_transcript_without_words_is_one_utterance() -> None:
    body = listen_response([], opts=ListenOptions(), duration_s=4.0, sha256="0" * 64, request_id="r")
    body["results"]["channels"][0]["alternatives"][0]["transcript"] = "just text"
    body["results"]["channels"][0]["detected_language"] = "de"
    transcript = transcript_from_response(ListenV1Response.model_validate(body))
    assert transcript.utterances == (Utterance(speaker=0, start_s=0.0, end_s=4.0, text="just text"),)
    assert transcript.language == "de"


def test_retry_after_as_seconds_or_date() -> None:
    assert retry_after_s({"Retry-After": "2.5"}) == 2.5
    assert retry_after_s({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after_s({"retry-after": "soon"}) is None
    assert retry_after_s({}) is None


def test_base_url_as_people_write_it() -> None:
    env = deepgram_environment("https://api.deepgram.com/v1/")
    assert (env.base, env.production) == ("https://api.deepgram.com", "wss://api.deepgram.com")
    assert deepgram_environment("http://10.0.0.5:8080").production == "ws://10.0.0.5:8080"


async def test_transcriber_for_settings() -> None:
    assert transcriber_for(Settings(_env_file=None)) is None
    settings = Settings(_env_file=None, deepgram_api_key=KEY, deepgram_base_url="http://dg.internal")
    configured = transcriber_for(settings)
    assert configured is not None
    assert configured.base_url == "http://dg.internal"
    assert configured.model == "nova-3"
    await configured.aclose()


async def test_stand_in_transcriber_runs_its_own_server(speech: bytes) -> None:
    async with stand_in_transcriber() as transcriber:
        transcript = await transcriber.transcribe_stream(chunks_of(speech), content_type="audio/wav")
        assert transcript.text.startswith("[stand-in transcription]")
        assert transcript.duration_s == pytest.approx(wav_seconds(speech), abs=1e-3)
        base_url = transcriber.base_url
    async with DeepgramTranscriber("stand-in", base_url, timeout_s=2) as late:
        with pytest.raises(TransientUpstreamError):
            await late.transcribe_stream(chunks_of(speech), content_type="audio/wav")
