"""Where media live: `blob_store_for(settings)` picks S3 when a bucket is configured, else a folder under DATA_DIR.
Both stores check every file the same way (bot.media.checked) before keeping it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.config import Settings
from bot.media.local import LocalBlobStore
from bot.media.s3 import S3BlobStore

if TYPE_CHECKING:
    from bot.ports import BlobStore

__all__ = ["LocalBlobStore", "S3BlobStore", "blob_store_for"]


def blob_store_for(settings: Settings) -> S3BlobStore | LocalBlobStore:
    """The configured store. Call `close()` on it when done; an S3 store also wants `ensure_bucket()` once at a
    worker's start-up."""
    if settings.s3_bucket:
        return S3BlobStore.from_settings(settings)
    return LocalBlobStore(settings.data_dir / "media")


if TYPE_CHECKING:

    def _keep_to_the_port(local: LocalBlobStore, s3: S3BlobStore) -> tuple[BlobStore, BlobStore]:
        return local, s3  # mypy fails here when either store drifts from the BlobStore protocol
