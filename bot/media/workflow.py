"""A message that shares files, as a durable workflow: for each file, store -> transcribe -> digest (a chain) ->
reply in the thread with the transcript attached -> embed for retrieval.

Every stage is a step, so a crash or a retry resumes at the stage it stopped in: a stored file is not downloaded
again, a transcript is not paid for twice, a chain step's answer is kept. One progress message per file is posted
first and edited as the stages pass (and every few seconds during long ones); a failure ends in that message,
saying what went wrong, and in a `failed` media row with the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, TypeVar

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert

from bot.chains.library import load_library
from bot.chains.runner import ChainResult, run_chain
from bot.chains.scope import load_thread, media_scope, transcript_scope
from bot.chains.spec import Chain
from bot.chat_turn import SERVICE_NAMES, claim_message, failure_reason, tell_failure
from bot.errors import ConfigurationError, InvalidInput, PermanentUpstreamError, UserFacingError
from bot.events import FileRef, ThreadRef
from bot.intake import MEDIA_TURN
from bot.media.accept import extension, shared_text
from bot.media.attach import upload_transcript
from bot.media.models import MEDIA, MEDIA_TAGS
from bot.media.retrieval import embed_chunks
from bot.media.search import load_media
from bot.media.transcripts import (
    chunk_transcript,
    load_transcript,
    save_transcript,
    transcript_from_json,
    transcript_to_json,
)
from bot.models import MESSAGES
from bot.ports import ChatPlatform, Transcript
from bot.streaming import open_reply
from bot.threads import THREAD_MESSAGE, thread_from_json, thread_to_json
from bot.tokens import count_tokens
from bot.workflows.errors import StepFailed
from bot.workflows.events import send_event
from bot.workflows.outbox import with_outbox
from bot.workflows.registry import workflow
from bot.workflows.steps import WorkflowContext

log = structlog.get_logger(__name__)
T = TypeVar("T")
DEFAULT_CHAIN = "media-digest"
MAX_TEXT_FILE_BYTES = 20_000_000  # a transcript file is read whole; larger text is not a transcript
MAX_TAGS = 20


@workflow(MEDIA_TURN, description="Store, transcribe and digest the files a message shared; answer in its thread.")
async def media_turn(ctx: WorkflowContext, input: dict[str, Any]) -> dict[str, Any]:
    message_id: int = input["message_id"]
    try:
        turn = await ctx.step.run("context", lambda: prepare(ctx, message_id))
    except StepFailed as exc:
        # Not even the message could be read: end it, saying so in its thread, as a chat turn would.
        failure = exc
        await ctx.step.run("tell-failure", lambda: tell_failure(ctx, message_id, failure), final=True)
        raise
    if turn is None:
        return {"skipped": "the message is gone or was handled already"}
    outcomes = [await digest_file(ctx, turn, index, file) for index, file in enumerate(turn["files"])]
    ok = [outcome for outcome in outcomes if not outcome.get("error")]
    status = "completed" if ok else "failed"
    errors = "; ".join(outcome["error"] for outcome in outcomes if outcome.get("error")) or None
    await ctx.step.run("finish", lambda: set_message_status(ctx, message_id, status, errors), final=True)
    return {"files": outcomes}


async def prepare(ctx: WorkflowContext, message_id: int) -> dict[str, Any] | None:
    claimed = await claim_message(ctx.runtime, message_id)
    if claimed is None:
        return None
    turn, thread = claimed.turn, claimed.thread
    async with ctx.runtime.autocommit.connect() as conn:
        files = (await conn.execute(select(MESSAGES.c.files).where(MESSAGES.c.id == message_id))).scalar_one()
    # A shared file is activity in the thread: a follow-up waiting for the thread to speak hears it. It carries
    # `sharer_id`, not `user_id`, so a question waiting for this user's answer does not take the file as one.
    await send_event(
        ctx.runtime,
        THREAD_MESSAGE,
        {"thread_id": turn.thread_id, "message_id": message_id, "sharer_id": turn.author_id, "text": turn.text},
        dedupe_key=f"message:{message_id}",
    )
    return {
        "message_id": message_id,
        "thread_id": turn.thread_id,
        "thread": thread_to_json(thread),
        "user_id": turn.author_id,
        "text": turn.text,
        "files": files or [],
    }


@dataclass
class FileJob:
    """One file's progress through the stages, with the message that shows it."""

    ctx: WorkflowContext
    turn: dict[str, Any]
    index: int
    file: FileRef
    progress_id: str = ""

    @property
    def thread(self) -> ThreadRef:
        return thread_from_json(self.turn["thread"])

    @property
    def platform(self) -> ChatPlatform:
        return with_outbox(self.ctx.deps.platform_for(self.thread), self.ctx.runtime, self.ctx.run_id)

    def step(self, name: str) -> str:
        return f"f{self.index}.{name}"

    async def show(self, text: str) -> None:
        """Edit the progress message; best effort, since a lost edit is repaired by the next one."""
        if not self.progress_id:
            return
        try:
            await self.platform.edit_message(self.thread, self.progress_id, text)
        except Exception as exc:  # noqa: BLE001 (progress must never fail the stage it describes)
            log.info("progress edit failed", error=str(exc))

    async def while_showing(self, label: str, work: Awaitable[T], detail: Callable[[], str] = lambda: "") -> T:
        """Run `work`, editing the progress message with the time spent every MEDIA_PROGRESS_INTERVAL_S."""
        interval = self.ctx.runtime.settings.media_progress_interval_s
        started = time.monotonic()

        async def tick() -> None:
            while True:
                await self.show(f"⏳ {self.file.name}: {label}… {detail()}{round(time.monotonic() - started)} s")
                await asyncio.sleep(interval)

        ticker = asyncio.create_task(tick())
        try:
            return await work
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker


async def digest_file(ctx: WorkflowContext, turn: dict[str, Any], index: int, raw: dict[str, Any]) -> dict[str, Any]:
    """One file through every stage. A failure ends in the file's progress message and its media row, and the
    other files of the message go on; only what is needed for the digest can fail the file."""
    job = FileJob(ctx, turn, index, FileRef(**raw))
    media_id = 0
    try:
        job.progress_id = await ctx.step.run(job.step("progress"), lambda: post_progress(job))
        # The row first, in a step of its own: a file refused while storing still has a row to mark failed.
        media_id = await ctx.step.run(job.step("record"), lambda: media_row(job))
        await ctx.step.run(job.step("store"), lambda: store_file(job, media_id))
        # Deepgram's answer is kept as the step's result before it is written out, so a database hiccup while
        # saving it does not pay for the transcription twice.
        heard = await ctx.step.run(job.step("transcribe"), lambda: transcribe(job, media_id), max_attempts=6)
        await ctx.step.run(job.step("keep"), lambda: keep_transcript(job, media_id, heard))
        chain = Chain.model_validate(await ctx.step.run(job.step("chain"), lambda: pick_chain(job, media_id)))
        scope = await chain_scope(job, media_id)
        result = await run_chain(
            ctx,
            chain,
            scope,
            thread=job.thread,
            thread_id=turn["thread_id"],
            user_id=turn["user_id"],
            prefix=job.step("chain"),
        )
        await ctx.step.run(job.step("reply"), lambda: post_digest(job, result))
        await ctx.step.run(job.step("save"), lambda: save_digest(ctx, media_id, result))
    except StepFailed as exc:
        failure = exc
        await _fail_file(job, media_id, failure)
        return {"media_id": media_id, "error": failure.error}
    except (ValueError, TypeError, KeyError, RuntimeError) as exc:
        # Our own bug or bad stored data outside any step: still end this file visibly, then let the others go on.
        log.exception("media file failed outside its steps", media_id=media_id)
        broken = StepFailed(job.step("digest"), f"{type(exc).__name__}: {exc}")
        await _fail_file(job, media_id, broken)
        return {"media_id": media_id, "error": broken.error}
    # Extras after the digest: neither fails the file (the user has the digest), each says why in the log.
    if chain.attach_transcript:
        await _extra(ctx, job.step("attach"), lambda: attach_transcript(job, media_id))
    chunks = 0
    if ctx.runtime.settings.retrieval_chunks > 0:
        chunks = await _extra(ctx, job.step("embed"), lambda: embed(job, media_id)) or 0
    return {"media_id": media_id, "chunks": chunks}


async def _extra(ctx: WorkflowContext, step_id: str, fn: Callable[[], Awaitable[T]]) -> T | None:
    try:
        return await ctx.step.run(step_id, fn, max_attempts=3)
    except StepFailed as exc:
        log.warning("media extra step failed", step=step_id, error=exc.error)
        return None


async def _fail_file(job: FileJob, media_id: int, failure: StepFailed) -> None:
    """The row first (it must say failed even if the thread cannot be told), then the notice, best effort."""
    ctx = job.ctx
    await ctx.step.run(job.step("mark-failed"), lambda: mark_media_failed(ctx, media_id, failure), final=True)
    try:
        await ctx.step.run(job.step("fail"), lambda: tell_file_failed(job, failure), final=True)
    except StepFailed as exc:
        log.warning("could not tell the thread a file failed", media_id=media_id, error=exc.error)


async def post_progress(job: FileJob) -> str:
    text = f"⏳ {job.file.name}: fetching the file…"
    posted = await job.platform.post_message(job.thread, text, idempotency_key=job.ctx.key(job.step("progress")))
    return posted.message_id


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
    async with ctx.runtime.autocommit.connect() as conn:
        await conn.execute(
            update(MEDIA)
            .where(MEDIA.c.id == media_id)
            .values(
                blob_key=stored.key,
                content_type=stored.content_type,
                kind=stored.kind,
                size=stored.size,
                sha256=stored.sha256,
                status="stored",
                updated_at=func.now(),
            )
        )
    log.info("media stored", media_id=media_id, size=stored.size, kind=stored.kind, run_id=ctx.run_id)
    return media_id


async def media_row(job: FileJob) -> int:
    thread, turn = job.thread, job.turn
    statement = (
        insert(MEDIA)
        .values(
            message_id=turn["message_id"],
            file_index=job.index,
            thread_id=turn["thread_id"],
            platform=thread.platform,
            workspace_id=thread.workspace_id,
            channel_id=thread.channel_id,
            owner_id=turn["user_id"],
            run_id=job.ctx.run_id,
            name=job.file.name[:512],
            platform_file_id=job.file.file_id[:256],
            blob_key="",
            content_type="",
            kind="",
            sha256="",
            language="",
            chain="",
            chain_version="",
            status="pending",
        )
        # A retried step finds the row it wrote before instead of adding a second.
        .on_conflict_do_update(constraint="uq_media_message_file", set_={"updated_at": func.now()})
        .returning(MEDIA.c.id)
    )
    async with job.ctx.runtime.autocommit.connect() as conn:
        return int((await conn.execute(statement)).scalar_one())


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
    from bot.media.captions import transcript_from_text

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


async def pick_chain(job: FileJob, media_id: int) -> dict[str, Any]:
    """Choose the chain for this file and keep its whole definition in the step: a replay after someone edits
    the YAML file still runs the version this run started with."""
    library = load_library(job.ctx.runtime.settings)
    media = await load_media(job.ctx.runtime, media_id)
    claimed = library.for_file(media["kind"], extension(media["name"]))
    chain = claimed[0] if claimed else library.get(DEFAULT_CHAIN)
    if chain is None:
        raise ConfigurationError(f"no chain handles {media['kind']} files and {DEFAULT_CHAIN!r} is not loaded")
    async with job.ctx.runtime.autocommit.connect() as conn:
        await conn.execute(
            update(MEDIA).where(MEDIA.c.id == media_id).values(chain=chain.name, chain_version=str(chain.version))
        )
    # Said here, in a step, so a later replay does not set the message back to "writing" after the digest is out.
    await job.show(f"⏳ {job.file.name}: writing the digest ({chain.name})…")
    return chain.model_dump(mode="json")


async def chain_scope(job: FileJob, media_id: int) -> dict[str, Any]:
    """What the chain's templates see, read on every resumption: the transcript is stored for good, and the
    thread is read as it was up to the message that shared the file."""
    async with job.ctx.runtime.autocommit.connect() as conn:
        transcript = await load_transcript(conn, media_id)
    if transcript is None:
        raise RuntimeError(f"media {media_id} has no transcript after its transcribe step")
    media = await load_media(job.ctx.runtime, media_id)
    return {
        "input": user_words(job.turn["text"], job.turn["files"]),
        "transcript": transcript_scope(transcript),
        "media": media_scope(media["name"], media["kind"], media["duration_s"]),
        "thread": await load_thread(job.ctx.runtime, job.turn["thread_id"], up_to=job.turn["message_id"]),
    }


def user_words(text: str, files: list[dict[str, Any]]) -> str:
    """What the user wrote with the files: nothing, when the text is the line adapters write for a bare share."""
    return "" if text == shared_text([FileRef(**f) for f in files]) else text


async def save_digest(ctx: WorkflowContext, media_id: int, result: ChainResult) -> list[str]:
    tags = digest_tags(result.outputs)
    async with ctx.runtime.engine.begin() as conn:
        await conn.execute(
            update(MEDIA)
            .where(MEDIA.c.id == media_id)
            .values(digest=result.outputs, status="done", error=None, updated_at=func.now())
        )
        if tags:
            await conn.execute(
                insert(MEDIA_TAGS).on_conflict_do_nothing(),
                [{"media_id": media_id, "tag": tag} for tag in tags],
            )
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
    await store_digest_message(job, result.reply, posted[0])
    await job.show(f"✅ {job.file.name}: digest below ({result.chain} v{result.version}).")
    return posted


async def store_digest_message(job: FileJob, text: str, platform_message_id: str) -> None:
    """The digest joins the thread's history, so follow-up questions see it. The first file's digest answers
    the message (`reply_to_id`); a per-run key keeps a replayed step from storing it twice."""
    statement = (
        insert(MESSAGES)
        .values(
            thread_id=job.turn["thread_id"],
            role="assistant",
            author_id="bot",
            text=text,
            token_count=count_tokens(text),
            status="completed",
            dedupe_key=f"digest:{job.ctx.run_id}:{job.index}",
            platform_message_id=platform_message_id,
            reply_to_id=job.turn["message_id"] if job.index == 0 else None,
            attempts=0,
        )
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
    )
    async with job.ctx.runtime.autocommit.connect() as conn:
        await conn.execute(statement)


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
        thread_id=job.turn["thread_id"],
        thread=job.thread,
        chunks=chunk_transcript(transcript),
    )


async def mark_media_failed(ctx: WorkflowContext, media_id: int, failed: StepFailed) -> None:
    log.warning("media failed", media_id=media_id, step=failed.step_id, detail=failed.error)
    if not media_id:
        return
    # A file whose transcript was kept stays usable (`/transcribe`, `/chain run`): only its digest failed.
    async with ctx.runtime.autocommit.connect() as conn:
        await conn.execute(
            update(MEDIA)
            .where(MEDIA.c.id == media_id)
            .values(status="failed", error=media_failure_text(failed)[:2000], updated_at=func.now())
        )


async def tell_file_failed(job: FileJob, failed: StepFailed) -> None:
    """Say in the thread why this file failed: in its progress message, or a new one if that was never posted."""
    text = f"❌ {job.file.name}: {media_failure_text(failed)}"
    try:
        if job.progress_id:
            await job.platform.edit_message(job.thread, job.progress_id, text)
        else:
            await job.platform.post_message(job.thread, text, idempotency_key=job.ctx.key(job.step("fail")))
    except (PermanentUpstreamError, ConfigurationError, UserFacingError) as refused:
        log.warning("the platform refused the failure notice", file=job.file.name, error=str(refused))


def media_failure_text(failed: StepFailed) -> str:
    if failed.reason == "gave_up" and failed.service and not failed.user_message:
        what = SERVICE_NAMES.get(failed.service, failed.service)
        stage = stage_label(failed.step_id.split(".", 1)[-1])
        return f"{what} kept failing ({failed.attempts} attempts) while {stage}. Try again later."
    return failure_reason(failed)


def stage_label(stage: str) -> str:
    return {
        "progress": "starting",
        "record": "starting",
        "store": "fetching and storing the file",
        "transcribe": "transcribing",
        "keep": "saving the transcript",
        "chain": "writing the digest",
        "reply": "posting the digest",
        "save": "saving the digest",
    }.get(stage.split(".")[0].split(":")[0], "working on it")


async def set_message_status(ctx: WorkflowContext, message_id: int, status: str, error: str | None) -> None:
    async with ctx.runtime.autocommit.connect() as conn:
        await conn.execute(
            update(MESSAGES)
            .where(MESSAGES.c.id == message_id)
            .values(status=status, error=error[:2000] if error else None, updated_at=func.now())
        )
