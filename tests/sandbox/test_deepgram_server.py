"""The stand-in Deepgram must satisfy the real deepgram-sdk 7: tests talk to it through AsyncDeepgramClient or raw
HTTP, and media come from real HTTP servers."""

from __future__ import annotations

import asyncio
import hashlib
import io
import signal
import sys
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import aiohttp
import httpx
import pytest
from aiohttp import web
from deepgram import AsyncDeepgramClient, DeepgramClientEnvironment, ListenV1Response
from deepgram.core.api_error import ApiError

from sandbox.deepgram_server import Said, StandInDeepgram
from sandbox.serving import LocalServer

PROJECT_ROOT = Path(__file__).resolve().parents[2]
KEY = "test-key"
OPTIONS: dict[str, Any] = {
    "model": "nova-3",
    "smart_format": True,
    "punctuate": True,
    "utterances": True,
    "diarize": True,
}


def wav_bytes(seconds: float, rate: int = 16_000, channels: int = 1) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x01\x00" * channels * int(seconds * rate))
    return out.getvalue()


def sdk_client(base_url: str, http: httpx.AsyncClient) -> AsyncDeepgramClient:
    environment = DeepgramClientEnvironment(base=base_url, production="ws://unused", agent="ws://unused", agent_rest="")
    return AsyncDeepgramClient(api_key=KEY, environment=environment, httpx_client=http, max_retries=0)


class MediaHost(LocalServer):
    """Serves fixed bytes at /media.wav and a 404 elsewhere, like a bucket would."""

    def __init__(self, body: bytes, content_type: str = "audio/wav") -> None:
        super().__init__()
        self.body = body
        self.content_type = content_type
        self.gets = 0

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/media.wav", self._media)
        return app

    async def _media(self, request: web.Request) -> web.StreamResponse:
        self.gets += 1
        return web.Response(body=self.body, content_type=self.content_type)

    def url(self, path: str = "/media.wav") -> str:
        return f"http://127.0.0.1:{self.bound_port}{path}"


@pytest.fixture
async def deepgram() -> AsyncIterator[StandInDeepgram]:
    async with StandInDeepgram(api_key=KEY) as server:
        yield server


@pytest.fixture
async def client(deepgram: StandInDeepgram) -> AsyncIterator[AsyncDeepgramClient]:
    async with httpx.AsyncClient() as http:
        yield sdk_client(deepgram.base_url, http)


async def chunked(data: bytes, size: int = 8192) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def raw_listen(server: StandInDeepgram, body: bytes, *, query: str = "", **headers: str) -> tuple[int, Any]:
    headers.setdefault("Authorization", f"Token {KEY}")
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{server.base_url}/v1/listen{query}", data=body, headers=headers) as resp,
    ):
        return resp.status, await resp.json()


async def test_sdk_parses_a_streamed_wav(deepgram: StandInDeepgram, client: AsyncDeepgramClient) -> None:
    media = wav_bytes(2.5)
    response = await client.listen.v1.media.transcribe_file(
        request=chunked(media), request_options={"additional_headers": {"content-type": "audio/wav"}}, **OPTIONS
    )

    assert isinstance(response, ListenV1Response)
    assert response.metadata.duration == pytest.approx(2.5)
    assert response.metadata.sha256 == hashlib.sha256(media).hexdigest()
    assert response.metadata.request_id == deepgram.requests[0].request_id
    transcript = cast(str, response.results.channels[0].alternatives[0].transcript)  # type: ignore[index]
    assert transcript.startswith("[stand-in transcription] This is not a real transcript.")
    assert f"2.50 seconds of audio, {len(media)} bytes received." in transcript
    utterances = response.results.utterances or []
    assert [u.speaker for u in utterances] == [0, 1, 0]
    assert " ".join(u.transcript or "" for u in utterances) == transcript
    times = cast(list[float], [t for u in utterances for t in (u.start, u.end)])  # the stand-in times every one
    assert times == sorted(times)
    assert times[0] >= 0
    assert times[-1] <= 2.5
    first_word = utterances[0].words[0]  # type: ignore[index]
    assert (first_word.word, first_word.punctuated_word, first_word.speaker) == ("stand-in", "[stand-in", 0)

    [record] = deepgram.requests
    assert record.status == 200
    assert record.query == {k: str(v).lower() for k, v in OPTIONS.items()}
    assert record.content_type == "audio/wav"
    assert record.body_bytes == record.media_bytes == len(media)
    # Streamed, not sent as one buffer with a length.
    assert record.headers.get("Transfer-Encoding") == "chunked"
    assert "authorization" not in {k.lower() for k in record.headers}


async def test_options_shape_the_answer(deepgram: StandInDeepgram) -> None:
    status, body = await raw_listen(deepgram, wav_bytes(1.0), **{"Content-Type": "audio/wav"})
    assert status == 200
    assert "utterances" not in body["results"]
    alternative = body["results"]["channels"][0]["alternatives"][0]
    # No punctuation asked for: bare lower-case words, as Deepgram gives them.
    assert alternative["transcript"].startswith("stand-in transcription this is not a real transcript")
    assert {"speaker", "punctuated_word"} & set(alternative["words"][0]) == set()
    assert "detected_language" not in body["results"]["channels"][0]

    status, body = await raw_listen(
        deepgram, wav_bytes(1.0), query="?diarize_model=latest&detect_language=true", **{"Content-Type": "audio/wav"}
    )
    assert status == 200
    assert body["results"]["channels"][0]["detected_language"] == "en"
    assert {w["speaker"] for w in body["results"]["channels"][0]["alternatives"][0]["words"]} == {0, 1}


async def test_large_body_is_counted_and_estimated(deepgram: StandInDeepgram, client: AsyncDeepgramClient) -> None:
    chunk, count = b"\xff" * (1 << 20), 24

    async def mp3_ish() -> AsyncIterator[bytes]:
        for _ in range(count):
            yield chunk

    response = await client.listen.v1.media.transcribe_file(
        request=mp3_ish(), request_options={"additional_headers": {"content-type": "audio/mpeg"}}, **OPTIONS
    )
    assert isinstance(response, ListenV1Response)
    size = len(chunk) * count
    assert response.metadata.duration == pytest.approx(size * 8 / 128_000, rel=1e-6)
    assert "an estimated" in (response.results.channels[0].alternatives or [])[0].transcript  # type: ignore[operator]
    assert deepgram.requests[0].body_bytes == size


async def test_url_is_fetched_by_the_server(deepgram: StandInDeepgram, client: AsyncDeepgramClient) -> None:
    media = wav_bytes(3.0, rate=8000, channels=2)
    async with MediaHost(media) as host:
        response = await client.listen.v1.media.transcribe_url(url=host.url(), **OPTIONS)
    assert isinstance(response, ListenV1Response)
    assert response.metadata.duration == pytest.approx(3.0)
    assert response.metadata.sha256 == hashlib.sha256(media).hexdigest()
    assert host.gets == 1
    [record] = deepgram.requests
    assert (record.url, record.media_bytes, record.content_type) == (host.url(), len(media), "application/json")


async def test_failed_fetch_is_a_remote_content_error(deepgram: StandInDeepgram, client: AsyncDeepgramClient) -> None:
    async with MediaHost(b"") as host:
        with pytest.raises(ApiError) as missing:
            await client.listen.v1.media.transcribe_url(url=host.url("/missing.wav"), **OPTIONS)
        stopped = host.url()
    with pytest.raises(ApiError) as unreachable:
        await client.listen.v1.media.transcribe_url(url=stopped, **OPTIONS)

    assert missing.value.status_code == unreachable.value.status_code == 400
    assert missing.value.body["err_code"] == unreachable.value.body["err_code"] == "REMOTE_CONTENT_ERROR"
    assert (
        missing.value.body["err_msg"] == "The remote server hosting the media returned a client error: 404 Not Found."
    )
    assert [r.status for r in deepgram.requests] == [400, 400]


async def test_auth_is_required_and_never_recorded(deepgram: StandInDeepgram) -> None:
    status, body = await raw_listen(deepgram, wav_bytes(0.5), Authorization="")
    assert status == 401
    assert body["err_code"] == "INVALID_AUTH"
    assert body["err_msg"] == "Invalid credentials."
    assert body["request_id"]
    status, _ = await raw_listen(deepgram, wav_bytes(0.5), Authorization="Token wrong-key")
    assert status == 401
    status, _ = await raw_listen(deepgram, wav_bytes(0.5), Authorization=f"Bearer {KEY}")
    assert status == 200
    assert [r.status for r in deepgram.requests] == [401, 401, 200]
    assert all("wrong-key" not in str(r) and KEY not in str(r) for r in deepgram.requests)


async def test_injected_failures_then_scripted_transcripts(
    deepgram: StandInDeepgram, client: AsyncDeepgramClient
) -> None:
    deepgram.script("Hello there.", [Said(0, "Hi."), Said(1, "Goodbye, then.")])
    deepgram.fail_next(2, 429, retry_after=3)
    for _ in range(2):
        with pytest.raises(ApiError) as limited:
            await client.listen.v1.media.transcribe_file(request=wav_bytes(1.0), **OPTIONS)
        assert limited.value.status_code == 429
        assert (limited.value.headers or {})["retry-after"] == "3"
        assert limited.value.body["err_code"] == "TOO_MANY_REQUESTS"
    assert deepgram.pending() == (2, 0)

    first = await client.listen.v1.media.transcribe_file(request=wav_bytes(1.0), **OPTIONS)
    second = await client.listen.v1.media.transcribe_file(request=wav_bytes(1.0), **OPTIONS)
    assert isinstance(first, ListenV1Response)
    assert isinstance(second, ListenV1Response)
    assert [u.transcript for u in first.results.utterances or []] == ["Hello there."]
    assert [(u.speaker, u.transcript) for u in second.results.utterances or []] == [(0, "Hi."), (1, "Goodbye, then.")]
    assert [r.status for r in deepgram.requests] == [429, 429, 200, 200]
    # The failed requests' bodies were read, so the client got the answer rather than a reset connection.
    assert deepgram.requests[0].body_bytes == len(wav_bytes(1.0))


async def test_unreadable_media_and_bad_options_are_400(deepgram: StandInDeepgram) -> None:
    for body in (b"", b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk"):
        status, answer = await raw_listen(deepgram, body, **{"Content-Type": "audio/wav"})
        assert status == 400
        assert answer["err_msg"] == "Bad Request: failed to process audio: corrupt or unsupported data"
    status, answer = await raw_listen(deepgram, wav_bytes(0.5), query="?diarize=maybe")
    assert status == 400
    assert "diarize" in answer["err_msg"]
    status, answer = await raw_listen(deepgram, b"{not json", **{"Content-Type": "application/json"})
    assert status == 400
    assert "JSON" in answer["err_msg"]


async def test_empty_wav_gives_an_empty_transcript(deepgram: StandInDeepgram) -> None:
    status, body = await raw_listen(deepgram, wav_bytes(0.0), query="?utterances=true")
    assert status == 200
    assert body["metadata"]["duration"] == 0
    assert body["results"]["channels"][0]["alternatives"][0]["transcript"] == ""
    assert body["results"]["utterances"] == []


async def test_control_endpoints_on_subprocess_server() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sandbox.deepgram_server", "--port", "0", "--api-key", KEY,
        cwd=PROJECT_ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        base_url = (await asyncio.wait_for(proc.stdout.readline(), timeout=10)).decode().strip()
        assert base_url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient() as http:
            sdk = sdk_client(base_url, http)
            control = base_url + "/_sandbox"
            assert (await http.post(control + "/script", json={"transcripts": ["over http"]})).status_code == 200
            assert (await http.post(control + "/fail", json={"status": 503, "retry_after": 1.5})).status_code == 200
            with pytest.raises(ApiError) as unavailable:
                await sdk.listen.v1.media.transcribe_file(request=wav_bytes(0.5), **OPTIONS)
            assert unavailable.value.status_code == 503
            assert (unavailable.value.headers or {})["retry-after"] == "1.5"
            answer = await sdk.listen.v1.media.transcribe_file(request=wav_bytes(0.5), **OPTIONS)
            assert isinstance(answer, ListenV1Response)
            assert (answer.results.channels[0].alternatives or [])[0].transcript == "over http"

            recorded = (await http.get(control + "/requests")).json()["requests"]
            assert [r["status"] for r in recorded] == [503, 200]
            assert recorded[1]["query"]["model"] == "nova-3"

            assert (await http.post(control + "/fail", json={"status": 200})).status_code == 400
            assert (await http.post(control + "/script", json={"transcripts": [7]})).status_code == 400
            assert (await http.post(control + "/latency", json={"latency_s": 0.3})).status_code == 200
            started = time.monotonic()
            await sdk.listen.v1.media.transcribe_file(request=wav_bytes(0.5), **OPTIONS)
            assert time.monotonic() - started >= 0.3

            assert (await http.post(control + "/reset")).status_code == 200
            started = time.monotonic()
            await sdk.listen.v1.media.transcribe_file(request=wav_bytes(0.5), **OPTIONS)
            assert time.monotonic() - started < 0.25
            assert len((await http.get(control + "/requests")).json()["requests"]) == 1
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), timeout=5)
    assert code == 0
