"""One shared file's way through the media stages: where it is (its step ids, its thread), and the progress
message that shows the stages passing, edited as they go and ending in ✅ or ❌ with what went wrong."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog

from bot.errors import ConfigurationError, PermanentUpstreamError, UserFacingError
from bot.events import FileRef, ThreadRef
from bot.failures import SERVICE_NAMES, failure_reason
from bot.workflows.errors import StepFailed
from bot.workflows.outbox import OutboxPlatform
from bot.workflows.steps import WorkflowContext

log = structlog.get_logger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class MediaTurn:
    """The media turn's `context` step result: the message that shared the files, and the files."""

    message_id: int
    thread_id: int
    thread: ThreadRef
    user_id: str
    text: str
    files: list[FileRef]


@dataclass
class FileJob:
    """One file's progress through the stages, with the message that shows it."""

    ctx: WorkflowContext
    turn: MediaTurn
    index: int
    file: FileRef
    progress_id: str = ""

    @property
    def thread(self) -> ThreadRef:
        return self.turn.thread

    @property
    def platform(self) -> OutboxPlatform:
        return self.ctx.platform(self.thread)

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
        clock = self.ctx.clock
        started = clock.monotonic()

        async def tick() -> None:
            while True:
                await self.show(f"⏳ {self.file.name}: {label}… {detail()}{round(clock.monotonic() - started)} s")
                await asyncio.sleep(interval)

        ticker = asyncio.create_task(tick())
        try:
            return await work
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker


async def post_progress(job: FileJob) -> str:
    text = f"⏳ {job.file.name}: fetching the file…"
    posted = await job.platform.post_message(job.thread, text, idempotency_key=job.ctx.key(job.step("progress")))
    return posted.message_id


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
