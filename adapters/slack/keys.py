"""Where a post's idempotency key rides on Slack, for `SlackOutbound.find_by_key` to look by when recovering: in
message metadata for posts and finished streams, as the first block's id for an upload's comment."""

from __future__ import annotations

import hashlib
from typing import Any

METADATA_EVENT = "threadbot_post"


def key_metadata(key: str) -> dict[str, Any]:
    return {"event_type": METADATA_EVENT, "event_payload": {"key": key}}


def carries_key(message: dict[str, Any], key: str) -> bool:
    metadata = message.get("metadata") or {}
    if metadata.get("event_type") == METADATA_EVENT and (metadata.get("event_payload") or {}).get("key") == key:
        return True
    return first_block_id(message) == upload_marker(key)


def upload_marker(idempotency_key: str) -> str:
    """The block_id an upload's comment carries: invisible, kept by Slack, at most 255 characters."""
    return "threadbot-upload-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]


def first_block_id(message: dict[str, Any]) -> str | None:
    blocks = message.get("blocks") or []
    block_id = blocks[0].get("block_id") if blocks and isinstance(blocks[0], dict) else None
    return str(block_id) if block_id else None
