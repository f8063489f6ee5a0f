"""Both blob stores, for real: S3 through moto's server over HTTP, the local folder in tmp_path. A file is kept whole
with its sha256, or refused (wrong type, over-size, a failing source) with nothing left behind."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.media import PeakRSS
from bot.config import Settings
from bot.errors import InvalidInput, PermanentUpstreamError, TransientUpstreamError
from bot.media.blobs import LocalBlobStore, S3BlobStore, blob_store_for
from tests.s3_fixtures import S3Server

MB = 1_000_000
MiB = 1024 * 1024
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 100


def wav_header(data_bytes: int) -> bytes:
    """A 16 kHz mono 16-bit WAV header for `data_bytes` of samples."""
    fmt = (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + (16000).to_bytes(4, "little")
    fmt += (32000).to_bytes(4, "little") + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
    riff_size = min(4 + 8 + len(fmt) + 8 + data_bytes, 0xFFFFFFFF)
    return (
        b"RIFF" + riff_size.to_bytes(4, "little") + b"WAVE"
        + b"fmt " + len(fmt).to_bytes(4, "little") + fmt
        + b"data" + min(data_bytes, 0xFFFFFFFF).to_bytes(4, "little")
    )  # fmt: skip


async def wav_stream(size: int, *, chunk: int = 64 * 1024, seed: int = 1) -> AsyncIterator[bytes]:
    """`size` bytes of WAV made on the fly in download-sized chunks (never whole): a header, then noise."""
    pool = random.Random(seed).randbytes(1 << 20)
    first = wav_header(size - 44)
    sent = 0
    offset = 0
    while sent < size:
        n = min(chunk, size - sent)
        if sent == 0:
            data = first + pool[: n - len(first)]
        else:
            offset = (offset + 7919) % (len(pool) - n)  # a stride, so chunks differ
            data = pool[offset : offset + n]
        sent += n
        yield data
        await asyncio.sleep(0)


async def sha_of(chunks: AsyncIterator[bytes]) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    async for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


async def raw(data: bytes, chunk: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), chunk):
        yield data[start : start + chunk]


def s3_settings(server: S3Server, bucket: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "s3_bucket": bucket,
        "s3_endpoint_url": server.endpoint_url,
        "s3_region": server.region,
        "s3_access_key_id": server.access_key_id,
        "s3_secret_access_key": server.secret_access_key,
        **overrides,
    }
    return Settings(_env_file=None, **values)


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LocalBlobStore | S3BlobStore]:
    if request.param == "local":
        yield LocalBlobStore(tmp_path / "media")
        return
    server: S3Server = request.getfixturevalue("s3_server")
    bucket: str = request.getfixturevalue("s3_bucket")
    s3 = S3BlobStore.from_settings(s3_settings(server, bucket))
    yield s3
    s3.close()


def left_behind(store: LocalBlobStore | S3BlobStore, s3_client: Any = None) -> list[str]:
    """Everything the store holds: objects and unfinished multipart uploads, or every file under the folder
    (hidden temp files included)."""
    if isinstance(store, LocalBlobStore):
        return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file())
    objects = s3_client.list_objects_v2(Bucket=store.bucket).get("Contents", [])
    uploads = s3_client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])
    return [o["Key"] for o in objects] + [f"upload of {u['Key']}" for u in uploads]


@pytest.fixture
def inspect(request: pytest.FixtureRequest, store: LocalBlobStore | S3BlobStore) -> Any:
    client = request.getfixturevalue("s3_client") if isinstance(store, S3BlobStore) else None
    return lambda: left_behind(store, client)


@pytest.mark.parametrize("size", [300_000, 20 * MB], ids=["one request", "multipart"])
async def test_a_file_is_kept_whole_with_its_sha256(store: LocalBlobStore | S3BlobStore, size: int) -> None:
    expected_sha, _ = await sha_of(wav_stream(size))
    blob = await store.put_stream("runs/r1/talk.wav", wav_stream(size), filename="talk.wav", max_bytes=size)

    assert (blob.key, blob.size, blob.sha256, blob.content_type, blob.kind) == (
        "runs/r1/talk.wav", size, expected_sha, "audio/wav", "audio",
    )  # fmt: skip
    assert await sha_of(store.read("runs/r1/talk.wav", chunk_size=MiB)) == (expected_sha, size)
    await store.delete("runs/r1/talk.wav")
    with pytest.raises(PermanentUpstreamError) as gone:
        await sha_of(store.read("runs/r1/talk.wav"))
    assert gone.value.user_message == "That file is no longer stored here; share it again."


async def test_text_is_kept_with_the_type_its_extension_names(store: LocalBlobStore | S3BlobStore) -> None:
    blob = await store.put_stream("t/notes.md", raw(b"# Plan\n\n- ship it\n"), filename="notes.md", max_bytes=MB)
    assert (blob.content_type, blob.kind, blob.size) == ("text/markdown", "text", 18)


async def test_a_wrong_type_is_refused_before_anything_is_stored(
    store: LocalBlobStore | S3BlobStore, inspect: Any
) -> None:
    with pytest.raises(InvalidInput) as refused:
        await store.put_stream("r/song.mp3", raw(PNG + os.urandom(20 * MB)), filename="song.mp3", max_bytes=100 * MB)
    assert refused.value.user_message == (
        "“song.mp3” looks like a PNG image, which I can't use: I accept audio, video, or .txt/.md/.vtt/.srt text."
    )
    assert inspect() == []


async def test_an_over_size_file_is_refused_as_it_arrives_and_nothing_is_left(
    store: LocalBlobStore | S3BlobStore, inspect: Any
) -> None:
    seen_midway: list[list[str]] = []

    async def source() -> AsyncIterator[bytes]:
        async for chunk in wav_stream(40 * MB):
            yield chunk
        raise AssertionError("the store read past the limit")

    async def watched() -> AsyncIterator[bytes]:
        sent = 0
        async for chunk in source():
            sent += len(chunk)
            if sent == 288 * 64 * 1024:  # 18.9 MB in: two parts are on their way
                seen_midway.append(await asyncio.to_thread(inspect))
            yield chunk

    with pytest.raises(InvalidInput) as refused:
        await store.put_stream("r/long.wav", watched(), filename="long.wav", max_bytes=20 * MB)
    assert refused.value.user_message == (
        "“long.wav” is over the 20.0 MB limit: 20.1 MB had arrived when I stopped reading it. "
        "Share a shorter or compressed version."
    )
    if isinstance(store, S3BlobStore):
        assert seen_midway == [["upload of r/long.wav"]]  # the multipart upload had started, and is aborted
    assert inspect() == []


async def test_a_source_that_fails_midway_leaves_nothing(store: LocalBlobStore | S3BlobStore, inspect: Any) -> None:
    async def broken() -> AsyncIterator[bytes]:
        async for chunk in wav_stream(12 * MB):
            yield chunk
        raise TransientUpstreamError("slack", "download cut short")

    with pytest.raises(TransientUpstreamError, match="download cut short"):
        await store.put_stream("r/cut.wav", broken(), filename="cut.wav", max_bytes=100 * MB)
    assert inspect() == []


async def test_a_cancelled_upload_leaves_nothing(store: LocalBlobStore | S3BlobStore, inspect: Any) -> None:
    arrived = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        sent = 0
        async for chunk in wav_stream(1000 * MB):
            yield chunk
            sent += len(chunk)
            if sent > 12 * MB:
                arrived.set()

    task = asyncio.create_task(store.put_stream("r/x.wav", endless(), filename="x.wav", max_bytes=2000 * MB))
    await arrived.wait()
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert inspect() == []


async def test_a_presigned_url_serves_the_file(s3_server: S3Server, s3_bucket: str) -> None:
    store = S3BlobStore.from_settings(s3_settings(s3_server, s3_bucket))
    try:
        blob = await store.put_stream("r/a.wav", wav_stream(3 * MB), filename="a.wav", max_bytes=5 * MB)
        url = await store.presigned_url("r/a.wav", expires_s=60)
        assert url.startswith(s3_server.endpoint_url)
        assert "X-Amz-Signature=" in url
        async with httpx.AsyncClient() as client:
            response = await client.get(url)
        assert response.status_code == 200
        assert hashlib.sha256(response.content).hexdigest() == blob.sha256
        assert response.headers["content-type"] == "audio/wav"
    finally:
        store.close()


async def test_the_local_folder_has_no_urls_and_keeps_keys_inside_it(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "media")
    await store.put_stream("runs/r9/a.txt", raw(b"hello"), filename="a.txt", max_bytes=10)
    assert (tmp_path / "media" / "runs" / "r9" / "a.txt").read_bytes() == b"hello"
    modes = {path: stat.S_IMODE((tmp_path / path).stat().st_mode) for path in ("media", "media/runs/r9/a.txt")}
    assert modes == {"media": 0o700, "media/runs/r9/a.txt": 0o600}, "the bot's user's alone"
    assert stat.S_IMODE((tmp_path / "media" / "runs").stat().st_mode) == 0o700
    assert await store.presigned_url("runs/r9/a.txt", expires_s=60) is None
    for key in ("../escape.txt", "/etc/passwd", "a/../../b", "a\\b", ""):
        with pytest.raises(ValueError, match="not a blob key"):
            store.path_for(key)
    await store.delete("runs/r9/a.txt")
    assert list((tmp_path / "media").iterdir()) == []  # the run's emptied folders go too
    await store.delete("runs/r9/a.txt")  # deleting twice is fine


async def test_a_missing_bucket_is_an_operator_problem_said_plainly(s3_server: S3Server) -> None:
    store = S3BlobStore.from_settings(s3_settings(s3_server, "no-such-bucket-here"))
    try:
        with pytest.raises(PermanentUpstreamError) as failed:
            await store.put_stream("r/a.txt", raw(b"hello"), filename="a.txt", max_bytes=10)
    finally:
        store.close()
    assert "bucket 'no-such-bucket-here' does not exist" in failed.value.detail
    assert "S3_BUCKET" in failed.value.detail
    assert "tell whoever runs this bot" in failed.value.user_message


async def test_an_unreachable_endpoint_is_transient(s3_server: S3Server) -> None:
    unreachable = S3Server("http://127.0.0.1:9")  # discard port: nothing listens
    store = S3BlobStore.from_settings(s3_settings(unreachable, "media"))
    try:
        with pytest.raises(TransientUpstreamError, match="Could not connect"):
            await store.put_stream("r/a.txt", raw(b"hello"), filename="a.txt", max_bytes=10)
    finally:
        store.close()


async def test_ensure_bucket_creates_a_missing_bucket_once(s3_server: S3Server, s3_client: Any) -> None:
    store = S3BlobStore.from_settings(s3_settings(s3_server, "made-at-start-up"))
    try:
        await store.ensure_bucket()
        await store.ensure_bucket()  # exists now: one HEAD and done
        rules = s3_client.get_bucket_lifecycle_configuration(Bucket="made-at-start-up")["Rules"]
        assert rules[0]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    finally:
        store.close()
        s3_client.delete_bucket(Bucket="made-at-start-up")


def test_blob_store_for_picks_s3_when_a_bucket_is_set(s3_server: S3Server, tmp_path: Path) -> None:
    s3 = blob_store_for(s3_settings(s3_server, "media"))
    assert isinstance(s3, S3BlobStore)
    assert s3.bucket == "media"
    s3.close()
    local = blob_store_for(Settings(_env_file=None, data_dir=tmp_path))
    assert isinstance(local, LocalBlobStore)
    assert local.root == tmp_path / "media"


async def test_a_200_mb_stream_is_stored_in_bounded_memory(
    store: LocalBlobStore | S3BlobStore, inspect: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    size = 200 * MB
    await store.put_stream("warm/up.wav", wav_stream(10 * MB), filename="up.wav", max_bytes=size)  # pools, threads
    await store.delete("warm/up.wav")
    with PeakRSS() as rss:
        blob = await store.put_stream("r/big.wav", wav_stream(size), filename="big.wav", max_bytes=size)
    assert blob.size == size
    with capsys.disabled():
        print(f"\n  {type(store).__name__}: 200 MB stored, peak RSS growth {rss.growth_mib:.1f} MiB")
    assert rss.growth_mib < 64
    await store.delete("r/big.wav")
    assert inspect() == []
