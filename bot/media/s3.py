"""S3 (or MinIO, R2) as the blob store. A file streams in as a multipart upload, a few parts in flight at once,
and any failure (wrong type, over-size, a broken source, the service) aborts it: nothing is left in the bucket."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
import structlog
from botocore.config import Config
from botocore.exceptions import ClientError

from bot.config import Settings
from bot.media.checked import CheckedStream
from bot.media.s3_errors import translate
from bot.ports import StoredBlob

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

T = TypeVar("T")
log = structlog.get_logger(__name__)

# 8 MiB parts as boto3's own transfer manager uses; S3 wants at least 5 MiB for every part but the last.
PART_BYTES = 8 * 1024 * 1024
# Parts uploading at once per file: enough to keep connections busy while the next part fills, and the memory
# one upload holds stays near (PARTS_IN_FLIGHT + 1) * PART_BYTES whatever the file's size.
PARTS_IN_FLIGHT = 4
_THREADS = 16
_MAX_PARTS = 10_000


class S3BlobStore:
    """Blobs in one bucket. Its boto3 client is thread-safe and all its calls run in the store's own threads,
    never on the event loop; `close()` releases those threads and the client's connections."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        *,
        part_bytes: int = PART_BYTES,
        parts_in_flight: int = PARTS_IN_FLIGHT,
    ) -> None:
        self._client = client
        self.bucket = bucket
        self._part_bytes = part_bytes
        self._parts_in_flight = parts_in_flight
        self._executor = ThreadPoolExecutor(max_workers=_THREADS, thread_name_prefix="s3")
        # Follow boto3's transfer manager: CRC32 per part unless the operator turned checksums down (old MinIO).
        # (The stubs lag botocore here: the setting exists since botocore 1.36.)
        self._checksums = getattr(client.meta.config, "request_checksum_calculation", "") != "when_required"

    @classmethod
    def from_settings(cls, settings: Settings) -> S3BlobStore:
        options: dict[str, Any] = {
            "region_name": settings.s3_region,
            # Presigned URLs would otherwise be signed with SigV2, which newer regions and servers refuse.
            "signature_version": "s3v4",
            "max_pool_connections": _THREADS,
            "retries": {"mode": "standard", "max_attempts": 3},
            "connect_timeout": 10,
            "read_timeout": 60,
        }
        if settings.s3_endpoint_url:
            # MinIO and most S3-compatible servers serve buckets as paths, not as subdomains.
            options["s3"] = {"addressing_style": "path"}
        secret = settings.s3_secret_access_key.get_secret_value()
        # A session of its own: boto3's default session is shared module state and not thread-safe.
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=settings.s3_endpoint_url or None,
            aws_access_key_id=settings.s3_access_key_id or None,
            aws_secret_access_key=secret or None,
            config=Config(**options),
        )
        return cls(client, settings.s3_bucket)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    async def ensure_bucket(self) -> None:
        """Create the bucket if it is missing (one HEAD request when it exists), for a worker's start-up. A bucket
        made here gets a rule that removes multipart uploads left by a crashed worker after a day."""
        try:
            await self._run(self._client.head_bucket, Bucket=self.bucket)
            return
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 404:
                raise translate(exc, action="check", bucket=self.bucket) from exc
        except Exception as exc:
            raise translate(exc, action="check", bucket=self.bucket) from exc
        region = self._client.meta.region_name
        create: dict[str, Any] = {"Bucket": self.bucket}
        if region and region != "us-east-1":  # us-east-1 refuses its own name as a location constraint
            create["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            await self._run(self._client.create_bucket, **create)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "BucketAlreadyOwnedByYou":  # another worker was first
                return
            raise translate(exc, action="create", bucket=self.bucket) from exc
        except Exception as exc:
            raise translate(exc, action="create", bucket=self.bucket) from exc
        log.info("s3_bucket_created", bucket=self.bucket, region=region)
        rule = {
            "ID": "threadbot-abort-abandoned-uploads",
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        }
        try:
            await self._call(
                "configure",
                self._client.put_bucket_lifecycle_configuration,
                Bucket=self.bucket,
                LifecycleConfiguration={"Rules": [rule]},
            )
        except Exception as exc:  # noqa: BLE001 - the bucket works without the rule; say so and go on
            log.warning("s3_lifecycle_rule_not_set", bucket=self.bucket, error=str(exc))

    async def put_stream(self, key: str, chunks: AsyncIterator[bytes], *, filename: str, max_bytes: int) -> StoredBlob:
        checked = CheckedStream(chunks, filename=filename, max_bytes=max_bytes)
        # Before anything is sent: a refused type never starts an upload.
        content_type, kind = await checked.check_type()
        upload = _MultipartUpload(self, key, content_type)
        # S3 takes at most 10,000 parts: 8 MiB parts cover 80 GB, and a higher MAX_FILE_BYTES gets bigger parts.
        part_bytes = max(self._part_bytes, -(-max_bytes // _MAX_PARTS))
        part = bytearray()
        try:
            async for chunk in checked.chunks():
                # Chunks are copied into the part once and dropped; a full part goes to S3 as it is. Parts need
                # not be equal, only >= 5 MiB, so a part ends at the first chunk boundary past the part size.
                part += chunk
                if len(part) >= part_bytes:
                    await upload.add_part(part)
                    part = bytearray()
            if upload.started:
                if part:
                    await upload.add_part(part)
                await upload.complete()
            else:
                await self._call(
                    "upload", self._client.put_object, key=key,
                    Bucket=self.bucket, Key=key, Body=part, ContentType=content_type,
                )  # fmt: skip
        except BaseException:
            await upload.abort()
            raise
        return StoredBlob(key=key, size=checked.size, sha256=checked.sha256, content_type=content_type, kind=kind)

    async def read(self, key: str, *, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        response = await self._call("read", self._client.get_object, key=key, Bucket=self.bucket, Key=key)
        body = response["Body"]
        try:
            while chunk := await self._call("read", body.read, chunk_size, key=key):
                yield chunk
        finally:
            body.close()

    async def presigned_url(self, key: str, *, expires_s: int) -> str:
        # Signing is local, but finding credentials may ask the instance metadata service: off the loop too.
        return await self._call(
            "sign", self._client.generate_presigned_url, "get_object",
            Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_s, key=key,
        )  # fmt: skip

    async def delete(self, key: str) -> None:
        await self._call("delete", self._client.delete_object, key=key, Bucket=self.bucket, Key=key)

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking boto3 call in the store's threads."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def _call(self, action: str, fn: Callable[..., T], *args: Any, key: str = "", **kwargs: Any) -> T:
        """`_run`, with botocore's errors translated into the bot's."""
        try:
            return await self._run(fn, *args, **kwargs)
        except Exception as exc:
            translated = translate(exc, action=action, bucket=self.bucket, key=key)
            if translated is exc:
                raise
            raise translated from exc


class _MultipartUpload:
    """One file's multipart upload, started by its first full part. Parts upload in the store's threads, at most
    `parts_in_flight` at once: `add_part` waits for a free slot, which bounds the memory held."""

    def __init__(self, store: S3BlobStore, key: str, content_type: str) -> None:
        self._store = store
        self._key = key
        self._content_type = content_type
        self._upload_id: str | None = None
        self._slots = asyncio.Semaphore(store._parts_in_flight)
        self._in_flight: set[asyncio.Task[CompletedPartTypeDef]] = set()
        self._done: list[CompletedPartTypeDef] = []
        self._failure: BaseException | None = None
        self._next_number = 1

    @property
    def started(self) -> bool:
        return self._upload_id is not None

    async def add_part(self, data: bytearray) -> None:
        store = self._store
        if self._upload_id is None:
            extra = {"ChecksumAlgorithm": "CRC32"} if store._checksums else {}
            created = await store._call(
                "upload", store._client.create_multipart_upload, key=self._key,
                Bucket=store.bucket, Key=self._key, ContentType=self._content_type, **extra,
            )  # fmt: skip
            self._upload_id = created["UploadId"]
        await self._slots.acquire()
        if self._failure is not None:
            self._slots.release()
            raise self._failure
        task = asyncio.create_task(self._upload_part(self._next_number, data))
        self._next_number += 1
        self._in_flight.add(task)
        task.add_done_callback(self._part_finished)

    async def _upload_part(self, number: int, data: bytearray) -> CompletedPartTypeDef:
        store = self._store
        extra = {"ChecksumAlgorithm": "CRC32"} if store._checksums else {}
        response = await store._call(
            "upload", store._client.upload_part, key=self._key, Bucket=store.bucket, Key=self._key,
            UploadId=self._upload_id, PartNumber=number, Body=data, **extra,
        )  # fmt: skip
        part: CompletedPartTypeDef = {"PartNumber": number, "ETag": response["ETag"]}
        if "ChecksumCRC32" in response:
            part["ChecksumCRC32"] = response["ChecksumCRC32"]
        return part

    def _part_finished(self, task: asyncio.Task[CompletedPartTypeDef]) -> None:
        self._in_flight.discard(task)
        self._slots.release()
        if task.cancelled():
            self._failure = self._failure or asyncio.CancelledError()
        elif (exc := task.exception()) is not None:
            self._failure = self._failure or exc
        else:
            self._done.append(task.result())

    async def complete(self) -> None:
        await self._settle()
        if self._failure is not None:
            raise self._failure
        store = self._store
        parts = sorted(self._done, key=lambda part: part["PartNumber"])
        await store._call(
            "upload", store._client.complete_multipart_upload, key=self._key, Bucket=store.bucket,
            Key=self._key, UploadId=self._upload_id, MultipartUpload={"Parts": parts},
        )  # fmt: skip
        self._upload_id = None  # completed: nothing left to abort

    async def abort(self) -> None:
        if self._upload_id is None:
            return
        # A part still uploading when the abort lands can be stored after it (S3's own warning): wait them out.
        await self._settle()
        store = self._store
        try:
            await store._call(
                "abort", store._client.abort_multipart_upload, key=self._key,
                Bucket=store.bucket, Key=self._key, UploadId=self._upload_id,
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - the error that made us abort is the one to raise
            log.warning("s3_abort_failed", bucket=store.bucket, key=self._key, error=str(exc))
        self._upload_id = None

    async def _settle(self) -> None:
        if self._in_flight:
            await asyncio.wait(set(self._in_flight))
