"""The stages a shared file goes through, each run as a durable step by `bot.media.workflow`: fetch and store,
transcribe (or read a transcript file), pick the chain and give it its scope, post and save the digest, attach the
transcript and embed it for retrieval."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import PurePosixPath
from typing import Any

import structlog

from bot.chains.library import load_library
from bot.chains.runner import ChainResult
from bot.chains.scope import load_thread, media_scope, transcript_scope
from bot.chains.spec import Chain
from bot.errors import ConfigurationError, InvalidInput
from bot.events import FileRef
from bot.media.accept import extension, shared_text
from bot.media.attach import upload_transcript
from bot.media.captions import transcript_from_text
from bot.media.filejob import FileJob
from bot.media.retrieval import embed_chunks
from bot.media.transcripts import (
    chunk_transcript,
    load_transcript,
    save_transcript,
    transcript_from_json,
    transcript_to_json,
)
from bot.ports import Transcript
from bot.stores import messages
from bot.stores.media import create_media, load_media, mark_stored, set_chain
from bot.stores.media import save_digest as keep_digest
from bot.streaming import open_reply
from bot.workflows.steps import WorkflowContext

log = structlog.get_logger(__name__)
DEFAULT_CHAIN = "media-digest"
MAX_TEXT_FILE_BYTES = 20_000_000  # a transcript file is read whole; larger text is not a transcript
MAX_TAGS = 20


async def media_row(job: FileJob) -> int:
    thread, turn = job.thread, job.turn
    return await create_media(
        job.ctx.runtime,
        message_id=turn.message_id,
        file_index=job.index,
        thread_id=turn.thread_id,
        thread=thread,
        owner_id=turn.user_id,
        run_id=job.ctx.run_id,
        name=job.file.name,
        platform_file_id=job.file.file_id,
    )


async def store_file(job: FileJob, media_id: int) -> int:
    """Stream the file from the platform into the blob store and record what was stored."""
    ctx, file = job.ctx, job.file
    blobs = ctx.deps.blobs
    source = ctx.deps.files.get(job.thread.platform)
    if blobs is None or source is None:
        raise ConfigurationError(f"this worker cannot fetch or keep files from {job.thread.platform!r}")
    thread = job.thread
    key = f"{thread.platform}/{thread.workspace_id}/{media_id}/{safe_name(file.name)}"
    received = 0

    async def counted(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        nonlocal received
        async for chunk in chunks:
            received += len(chunk)
            yield chunk

    settings = ctx.runtime.settings
    # aclosing: a file refused after its first bytes closes its download (connection, file handle) right away.
    async with contextlib.aclosing(source.download(file, max_bytes=settings.max_file_bytes)) as download:
        stored = await job.while_showing(
            "fetching and storing",
            blobs.put_stream(key, counted(download), filename=file.name, max_bytes=settings.max_file_bytes),
            detail=lambda: f"{received / 1e6:,.1f} MB, ",
        )
    await mark_stored(ctx.runtime, media_id, stored)
    log.info("media stored", media_id=media_id, size=stored.size, kind=stored.kind, run_id=ctx.run_id)
    return media_id


def safe_name(name: str) -> str:
    """A file name fit for a storage key: no folders, no odd characters, not too long."""
    base = PurePosixPath(name.replace("\\", "/")).name or "file"
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._") or "file"
    return cleaned[-120:]


async def transcribe(job: FileJob, media_id: int) -> dict[str, Any]:
    """The transcript as JSON (kept as this step's result); text files are parsed, media go to the transcriber."""
    media = await load_media(job.ctx.runtime, media_id)
    if media["kind"] == "text":
        transcript = await read_text_transcript(job, media)
    else:
        transcript = await job.while_showing("transcribing", speech_to_text(job, media))
    log.info("media transcribed", media_id=media_id, seconds=round(transcript.duration_s, 1))
    return transcript_to_json(transcript)


async def keep_transcript(job: FileJob, media_id: int, heard: dict[str, Any]) -> None:
    async with job.ctx.runtime.engine.connect() as conn:
        await save_transcript(conn, media_id, transcript_from_json(heard))


async def read_text_transcript(job: FileJob, media: dict[str, Any]) -> Transcript:
    blobs = job.ctx.deps.blobs
    assert blobs is not None  # the store step needed it
    if media["size"] > MAX_TEXT_FILE_BYTES:
        raise InvalidInput(
            f"“{media['name']}” is {media['size'] / 1e6:,.1f} MB of text; transcripts up to "
            f"{MAX_TEXT_FILE_BYTES / 1e6:,.0f} MB are read."
        )
    data = b"".join([chunk async for chunk in blobs.read(media["blob_key"])])
    return transcript_from_text(data, media["name"], media["content_type"])


async def speech_to_text(job: FileJob, media: dict[str, Any]) -> Transcript:
    ctx = job.ctx
    blobs, transcriber = ctx.deps.blobs, ctx.deps.transcriber
    if blobs is None or transcriber is None:
        raise ConfigurationError("this worker has no transcriber configured")
    settings = ctx.runtime.settings
    via_url = settings.transcribe_via_url
    if via_url is None:
        via_url = bool(settings.s3_bucket) and not settings.s3_endpoint_url
    url = await blobs.presigned_url(media["blob_key"], expires_s=settings.media_url_expires_s) if via_url else None
    if url is not None:
        return await transcriber.transcribe_url(url, content_type=media["content_type"])
    return await transcriber.transcribe_stream(blobs.read(media["blob_key"]), content_type=media["content_type"])


async def pick_chain(job: FileJob, media_id: int) -> Chain:
    """Choose the chain for this file and keep its whole definition in the step: a replay after someone edits
    the YAML file still runs the version this run started with."""
    library = load_library(job.ctx.runtime.settings)
    row = await load_media(job.ctx.runtime, media_id)
    claimed = library.for_file(row["kind"], extension(row["name"]))
    chain = claimed[0] if claimed else library.get(DEFAULT_CHAIN)
    if chain is None:
        raise ConfigurationError(f"no chain handles {row['kind']} files and {DEFAULT_CHAIN!r} is not loaded")
    await set_chain(job.ctx.runtime, media_id, chain.name, str(chain.version))
    # Said here, in a step, so a later replay does not set the message back to "writing" after the digest is out.
    await job.show(f"⏳ {job.file.name}: writing the digest ({chain.name})…")
    return chain


async def chain_scope(job: FileJob, media_id: int) -> dict[str, Any]:
    """What the chain's templates see, read on every resumption: the transcript is stored for good, and the
    thread is read as it was up to the message that shared the file."""
    async with job.ctx.runtime.autocommit.connect() as conn:
        transcript = await load_transcript(conn, media_id)
    if transcript is None:
        raise RuntimeError(f"media {media_id} has no transcript after its transcribe step")
    row = await load_media(job.ctx.runtime, media_id)
    return {
        "input": user_words(job.turn.text, job.turn.files),
        "transcript": transcript_scope(transcript),
        "media": media_scope(row["name"], row["kind"], row["duration_s"]),
        "thread": await load_thread(job.ctx.runtime, job.turn.thread_id, up_to=job.turn.message_id),
    }


def user_words(text: str, files: list[FileRef]) -> str:
    """What the user wrote with the files: nothing, when the text is the line adapters write for a bare share."""
    return "" if text == shared_text(files) else text


async def save_digest(ctx: WorkflowContext, media_id: int, result: ChainResult) -> list[str]:
    tags = digest_tags(result.outputs)
    await keep_digest(ctx.runtime, media_id, result.outputs, tags)
    return tags


def digest_tags(outputs: dict[str, Any]) -> list[str]:
    """Tags from a chain's outputs: a step named `tags` returning a list, or any JSON output with a `tags` list."""
    found: list[Any] = []
    for step_id, output in outputs.items():
        if step_id == "tags" and isinstance(output, list):
            found.extend(output)
        elif isinstance(output, dict) and isinstance(output.get("tags"), list):
            found.extend(output["tags"])
    tags: list[str] = []
    for tag in found:
        if not isinstance(tag, str):
            continue
        clean = re.sub(r"\s+", " ", tag.strip().lstrip("#").lower())[:64]
        if clean and clean not in tags:
            tags.append(clean)
    return tags[:MAX_TAGS]


async def post_digest(job: FileJob, result: ChainResult) -> list[str]:
    if result.stopped_at or not result.reply.strip():
        # The chain asked a question nobody answered in time (it said so in the thread), or wrote nothing.
        why = f"stopped at its step “{result.stopped_at}”" if result.stopped_at else "wrote an empty digest"
        await job.show(f"⏹ {job.file.name}: the chain {result.chain} {why}.")
        return []
    stream = open_reply(job.platform, job.thread, job.ctx.key(job.step("reply")))
    await stream.feed(result.reply)
    posted = await stream.finish()
    await messages.store_digest(
        job.ctx.runtime,
        thread_id=job.turn.thread_id,
        text=result.reply,
        key=f"digest:{job.ctx.run_id}:{job.index}",
        platform_message_id=posted[0],
        # The first file's digest answers the message.
        reply_to_id=job.turn.message_id if job.index == 0 else None,
    )
    await job.show(f"✅ {job.file.name}: digest below ({result.chain} v{result.version}).")
    return posted


async def attach_transcript(job: FileJob, media_id: int) -> str:
    async with job.ctx.runtime.autocommit.connect() as conn:
        transcript = await load_transcript(conn, media_id)
    if transcript is None:
        return ""
    return await upload_transcript(job.platform, job.thread, job.file.name, transcript, job.ctx.key(job.step("attach")))


async def embed(job: FileJob, media_id: int) -> int:
    async with job.ctx.runtime.autocommit.connect() as conn:
        transcript = await load_transcript(conn, media_id)
    if transcript is None:
        return 0
    return await embed_chunks(
        job.ctx.runtime,
        job.ctx.deps.llm,
        media_id=media_id,
        thread_id=job.turn.thread_id,
        thread=job.thread,
        chunks=chunk_transcript(transcript),
    )
