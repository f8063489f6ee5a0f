"""media: a large file through the blob store's S3 upload path against boto3's own `upload_fileobj` of the same
bytes, both to moto's S3 server. The server runs in a process of its own: it keeps every object in memory, and
the memory measured is the benchmark process's, where our upload runs."""

from __future__ import annotations

import asyncio
import io
import random
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import boto3
import psutil
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from bench.report import Result
from bot.config import Settings
from bot.media.s3 import PART_BYTES, PARTS_IN_FLIGHT, S3BlobStore

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

MB = 1_000_000
MiB = 1024 * 1024
# What a platform download hands the store: httpx yields the network's reads, tens of KiB each.
DOWNLOAD_CHUNK = 64 * 1024
_KEY_ID = _SECRET = "bench"
_MOTO = (
    "import sys; from moto.server import ThreadedMotoServer; "
    "server = ThreadedMotoServer('127.0.0.1', 0, verbose=False); server.start(); "
    "print(server.get_host_and_port()[1], flush=True); sys.stdin.read()"
)


class Generated:
    """`size` bytes that are a function of their offset (a WAV header, then a pseudo-random pool repeated at an
    odd stride), so both uploaders get the very same bytes without either holding the file."""

    _pool = random.Random(6).randbytes(4 * MiB + 7)

    def __init__(self, size: int) -> None:
        self.size = size
        self._header = b"RIFF" + (size - 8).to_bytes(4, "little") + b"WAVEfmt " + bytes(32)

    def at(self, offset: int, n: int) -> bytes:
        n = max(0, min(n, self.size - offset))
        out = bytearray()
        while len(out) < n:
            position = offset + len(out)
            if position < len(self._header):
                out += self._header[position : position + n - len(out)]
                continue
            start = position % len(self._pool)
            out += self._pool[start : start + n - len(out)]
        return bytes(out)

    async def chunks(self) -> AsyncIterator[bytes]:
        for offset in range(0, self.size, DOWNLOAD_CHUNK):
            yield self.at(offset, DOWNLOAD_CHUNK)

    def file(self) -> io.BufferedReader:
        return io.BufferedReader(GeneratedFile(self))


class GeneratedFile(io.RawIOBase):
    """`Generated` as a seekable binary file, which is what `upload_fileobj` is at its best with."""

    def __init__(self, data: Generated) -> None:
        self._data = data
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._data.size}[whence]
        self._position = base + offset
        return self._position

    def readinto(self, buffer: Any) -> int:
        data = self._data.at(self._position, len(buffer))
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


class PeakRSS:
    """This process's resident memory, sampled every 2 ms in a thread while the block runs."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.baseline = self.peak = 0

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> PeakRSS:
        self.baseline = self.peak = self._process.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)

    @property
    def growth_mib(self) -> float:
        return round((self.peak - self.baseline) / MiB, 1)


@asynccontextmanager
async def moto_server() -> AsyncIterator[str]:
    """moto's S3 server in its own process on 127.0.0.1; yields its endpoint URL. It exits when its stdin closes."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _MOTO, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        port = int(await asyncio.wait_for(proc.stdout.readline(), 60) or b"0")
        if not port:
            raise RuntimeError("moto's S3 server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def _boto3_client(endpoint: str) -> S3Client:
    config = Config(signature_version="s3v4", s3={"addressing_style": "path"})
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=_KEY_ID,
        aws_secret_access_key=_SECRET, config=config,
    )  # fmt: skip


async def _ours(store: S3BlobStore, data: Generated) -> tuple[float, float]:
    key = f"ours-{uuid.uuid4().hex}.wav"
    with PeakRSS() as rss:
        started = time.perf_counter()
        blob = await store.put_stream(key, data.chunks(), filename="bench.wav", max_bytes=data.size)
        elapsed = time.perf_counter() - started
    assert blob.size == data.size
    await store.delete(key)
    return data.size / MB / elapsed, rss.growth_mib


async def _boto3(client: S3Client, bucket: str, data: Generated) -> tuple[float, float]:
    key = f"boto3-{uuid.uuid4().hex}.wav"
    with PeakRSS() as rss:
        started = time.perf_counter()
        await asyncio.to_thread(client.upload_fileobj, data.file(), bucket, key, Config=TransferConfig())
        elapsed = time.perf_counter() - started
    await asyncio.to_thread(client.delete_object, Bucket=bucket, Key=key)
    return data.size / MB / elapsed, rss.growth_mib


def _label(size: int) -> str:
    return f"{size / 1000 / MB:g} GB" if size >= 1000 * MB else f"{size / MB:g} MB"


async def measure(size: int, rounds: int) -> dict[str, Any]:
    """Best MB/s of `rounds` uploads each (taking turns at going first) and the highest memory growth seen: the
    machine is shared, and the best run is the one least disturbed by everything else on it."""
    ours: list[tuple[float, float]] = []
    theirs: list[tuple[float, float]] = []
    # A fresh server per size: moto's own heap after a 1 GB object would slow the next uploads down.
    async with moto_server() as endpoint:
        bucket = "bench-media"
        client = _boto3_client(endpoint)
        await asyncio.to_thread(client.create_bucket, Bucket=bucket)
        settings = Settings(
            _env_file=None, s3_bucket=bucket, s3_endpoint_url=endpoint, s3_access_key_id=_KEY_ID,
            s3_secret_access_key=_SECRET,
        )  # fmt: skip
        store = S3BlobStore.from_settings(settings)
        try:
            # Warm-up, not counted: connection pools and threads on our side, and moto's heap, which grows to hold
            # the first file of a size (whichever upload came first was slower for it).
            await _ours(store, Generated(20 * MB))
            data = Generated(size)
            await _boto3(client, bucket, data)
            for round_ in range(rounds):
                if round_ % 2 == 0:
                    ours.append(await _ours(store, data))
                    theirs.append(await _boto3(client, bucket, data))
                else:
                    theirs.append(await _boto3(client, bucket, data))
                    ours.append(await _ours(store, data))
        finally:
            store.close()
            client.close()
    ours_mbs, boto3_mbs = max(mbs for mbs, _ in ours), max(mbs for mbs, _ in theirs)
    return {
        "file": _label(size),
        "runs": rounds,
        "ours MB/s": round(ours_mbs, 1),
        "boto3 upload_fileobj MB/s": round(boto3_mbs, 1),
        "ours / boto3": f"{ours_mbs / boto3_mbs:.0%}",
        "ours peak RSS growth MiB": max(rss for _, rss in ours),
        "boto3 peak RSS growth MiB": max(rss for _, rss in theirs),
        "ours MB/s each": " ".join(f"{mbs:.0f}" for mbs, _ in ours),
        "boto3 MB/s each": " ".join(f"{mbs:.0f}" for mbs, _ in theirs),
    }


async def run(quick: bool) -> Result:
    plan = ((20 * MB, 1), (50 * MB, 1)) if quick else ((200 * MB, 3), (1000 * MB, 2))
    rows = [await measure(size, rounds) for size, rounds in plan]
    last = rows[-1]
    ratio = float(last["ours / boto3"].rstrip("%"))
    rss = float(last["ours peak RSS growth MiB"])
    return Result(
        "media",
        rows,
        targets=[
            f"our upload >= 80% of boto3 upload_fileobj's MB/s: {last['ours / boto3']} at {last['file']} "
            f"({'met' if ratio >= 80 else 'NOT met'})",
            f"peak RSS growth during our upload <= 64 MiB: {rss} MiB at {last['file']} "
            f"({'met' if rss <= 64 else 'NOT met'})",
        ],
        notes=[
            "S3BlobStore.put_stream (64 KiB chunks in, as from a platform download; type sniffed, size checked, "
            f"sha256 taken; {PART_BYTES // MiB} MiB parts, {PARTS_IN_FLIGHT} in flight) against upload_fileobj "
            "(default TransferConfig: 8 MiB parts, 10 threads) of the same generated bytes from a seekable file.",
            "To moto's S3 server over loopback, in its own process; each object deleted after its upload. moto "
            "spends two to three times the uploader's CPU per GB and shares the machine's cores with it (and with "
            "whatever else runs), so runs vary widely: MB/s are the best run of each (every run listed), RSS growth "
            "the highest seen.",
        ],
    )
