"""What a workflow function sees: `ctx.step.run / sleep / sleep_until / wait_for_event / send_event / invoke /
start`. A run is replayed from the top each time it resumes; a step whose outcome is stored returns it instead
of running again, so a step's code runs to completion at most once per success (side effects inside it go
through the outbox, keyed by run and step, for the case where it crashed before its outcome was stored)."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from pydantic import TypeAdapter

from bot.config import Settings
from bot.errors import ConfigurationError, PermanentUpstreamError, TransientUpstreamError, UserFacingError
from bot.events import ThreadRef
from bot.metrics import STEP_SECONDS
from bot.trace import mark
from bot.workflows import data, store
from bot.workflows.errors import NonRetriableError, RunAborted, StepFailed, Suspend
from bot.workflows.events import Sent, register_wait, send_event, time_out_wait
from bot.workflows.outbox import OutboxPlatform, Pending
from bot.workflows.registry import Workflow
from bot.workflows.runs import start_run

if TYPE_CHECKING:
    from bot.clock import Clock
    from bot.deps import WorkerDeps
    from bot.runtime import Runtime

log = structlog.get_logger(__name__)
T = TypeVar("T")
InputT = TypeVar("InputT")
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def backoff_s(attempt: int, settings: Settings, retry_after_s: float | None = None) -> float:
    """Exponential backoff with jitter, never shorter than what the upstream asked for."""
    jitter = random.uniform(0.8, 1.2)  # noqa: S311 (spreads retries of many runs; not security)
    delay = min(settings.retry_max_delay_s, settings.retry_base_delay_s * 2 ** (attempt - 1) * jitter)
    return float(max(delay, retry_after_s or 0.0))


def _seconds(value: timedelta | float) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _user_message(exc: BaseException) -> str:
    if isinstance(exc, UserFacingError | PermanentUpstreamError | NonRetriableError):
        return exc.user_message
    return ""


class WorkflowContext:
    def __init__(
        self,
        deps: WorkerDeps,
        run: store.ClaimedRun,
        owner: str,
        *,
        workflow_name: str,
        max_step_attempts: int,
        exhausted: bool = False,
    ) -> None:
        self.deps = deps
        self.run_id = run.run_id
        self.input = run.input
        self.attempt = run.attempts
        self.owner = owner
        self.workflow_name = workflow_name
        self.max_step_attempts = max_step_attempts
        # Set when the run has been rescued from dead workers too often: steps not yet done fail instead of
        # running, except `final` ones (telling the user it failed).
        self.exhausted = exhausted
        self.lease_lost = False
        # The outbox writes of the step running now that are still in flight (see bot.workflows.outbox).
        self.pending = Pending()
        self.step = Steps(self, run.steps, run.progressed_at)

    @property
    def runtime(self) -> Runtime:
        return self.deps.runtime

    @property
    def clock(self) -> Clock:
        """The time due times are measured by (the runtime's; a test's FakeClock)."""
        return self.deps.runtime.clock

    def platform(self, thread: ThreadRef) -> OutboxPlatform:
        """The thread's platform, each post and upload recorded in this run's outbox: a replay never posts twice."""
        return OutboxPlatform(self.deps.platform_for(thread), self.runtime, self.run_id, self.pending)

    def key(self, step_id: str) -> str:
        """The idempotency key for side effects of a step: stable across replays of this run."""
        return f"{self.run_id}:{step_id}"


class Steps:
    def __init__(self, ctx: WorkflowContext, memo: dict[str, store.StepRecord], progressed_at: datetime) -> None:
        self._ctx = ctx
        self._memo = memo
        self._seen: set[str] = set()
        self._since = progressed_at

    def _enter(self, step_id: str) -> store.StepRecord | None:
        if step_id in self._seen:
            raise NonRetriableError(f"step id {step_id!r} used twice in one run of {self._ctx.workflow_name}")
        self._seen.add(step_id)
        if self._ctx.lease_lost:
            raise RunAborted(f"run {self._ctx.run_id}: lease lost or run cancelled")
        return self._memo.get(step_id)

    async def _save(self, step_id: str, **fields: Any) -> None:
        ctx = self._ctx
        settings = ctx.runtime.settings
        progressed = await store.save_step(
            ctx.runtime, ctx.run_id, ctx.owner, settings.workflow_lease_s, step_id, **fields
        )
        if progressed is None:
            ctx.lease_lost = True
            raise RunAborted(f"run {ctx.run_id}: lease lost or run cancelled")
        self._since = progressed

    async def run(
        self,
        step_id: str,
        fn: Callable[[], Awaitable[T]],
        *,
        result: type[T] | TypeAdapter[T] | None = None,
        max_attempts: int | None = None,
        final: bool = False,
    ) -> T:
        """Run `fn` once and keep its result as JSON. With `result` (a dataclass, a pydantic model, or an adapter
        for a union), the JSON is read back as that type, so a replay gets what a fresh run got; without it, the
        JSON is returned as it is. Failures are retried with backoff, each retry a new resumption of the run;
        `NonRetriableError`, permanent upstream errors and user-facing errors fail the step at once. A step that
        failed for good raises `StepFailed` here, now and on every replay."""
        record = self._enter(step_id)
        if record is not None and record.status == "completed":
            return record.output if result is None else data.decode(result, record.output)
        if record is not None and record.status == "failed":
            memo = record.output or {}
            raise StepFailed(
                step_id,
                record.error or "failed",
                memo.get("user_message", ""),
                memo.get("service", ""),
                record.attempts,
                memo.get("reason", "refused"),
            )
        ctx = self._ctx
        if record is not None and record.due_at is not None and record.due_at > ctx.clock.now():
            raise Suspend("pending", record.due_at)  # woken before its retry was due
        attempt = (record.attempts if record is not None else 0) + 1
        limit = max_attempts or ctx.max_step_attempts
        if ctx.exhausted and not final:
            await self._fail(
                step_id,
                attempt,
                "the run was interrupted too many times (its workers kept dying)",
                reason="interrupted",
            )
        mark(f"step:{step_id}")
        started = datetime.now(UTC)  # a recorded fact, by the wall clock like the database's now()
        try:
            try:
                value = await fn()
            except BaseException:
                await ctx.pending.settle(quiet=True)  # what it did post is recorded for the retry
                raise
            await ctx.pending.settle()
            output = data.to_json(value) if result is None else data.encode(result, value)
            # What a replay will get back, exactly.
            fresh = output if result is None else data.decode(result, output)
        except (Suspend, RunAborted, StepFailed):
            raise
        except (NonRetriableError, PermanentUpstreamError, UserFacingError, ConfigurationError) as exc:
            await self._fail(
                step_id, attempt, f"{type(exc).__name__}: {exc}", user_message=_user_message(exc), started_at=started
            )
        except Exception as exc:
            STEP_SECONDS.labels("raised").observe((datetime.now(UTC) - started).total_seconds())
            detail = f"{type(exc).__name__}: {exc}"
            if attempt >= limit:
                what = exc.service if isinstance(exc, TransientUpstreamError) else ""
                error = f"gave up after {attempt} attempts: {detail}"
                await self._fail(step_id, attempt, error, service=what, reason="gave_up", started_at=started)
            retry_after = exc.retry_after_s if isinstance(exc, TransientUpstreamError) else None
            due = ctx.clock.now() + timedelta(seconds=backoff_s(attempt, ctx.runtime.settings, retry_after))
            if not isinstance(exc, TransientUpstreamError):
                log.exception("step raised; retrying", step=step_id, attempt=attempt)
            else:
                log.warning("step failed transiently; retrying", step=step_id, attempt=attempt, error=detail)
            await self._save(
                step_id, kind="run", status="retrying", error=detail, attempts=attempt, due_at=due, started_at=started
            )
            raise Suspend("pending", due) from exc
        await self._save(step_id, kind="run", status="completed", output=output, attempts=attempt, started_at=started)
        STEP_SECONDS.labels("completed").observe((datetime.now(UTC) - started).total_seconds())
        mark(f"step:{step_id}:saved")
        return fresh

    async def _fail(
        self,
        step_id: str,
        attempt: int,
        error: str,
        *,
        user_message: str = "",
        service: str = "",
        reason: str = "refused",
        started_at: datetime | None = None,
    ) -> None:
        output = {"user_message": user_message, "service": service, "reason": reason}
        await self._save(
            step_id, kind="run", status="failed", output=output, error=error[:4000], attempts=attempt,
            started_at=started_at,
        )  # fmt: skip
        raise StepFailed(step_id, error, user_message, service, attempt, reason)

    async def sleep(self, step_id: str, duration: timedelta | float) -> None:
        record = self._memo.get(step_id)
        if record is None or record.due_at is None:
            await self.sleep_until(step_id, self._ctx.clock.now() + timedelta(seconds=_seconds(duration)))
        else:
            await self.sleep_until(step_id, record.due_at)

    async def sleep_until(self, step_id: str, when: datetime) -> None:
        """Park the run until `when` (kept from the first time this step ran, so replays do not move it)."""
        record = self._enter(step_id)
        if record is not None and record.status == "completed":
            return
        due = record.due_at if record is not None and record.due_at is not None else when
        if due <= self._ctx.clock.now():
            await self._save(step_id, kind="sleep", status="completed", due_at=due)
            return
        if record is None:
            await self._save(step_id, kind="sleep", status="sleeping", due_at=due)
        raise Suspend("sleeping", due)

    async def wait_for_event(
        self,
        step_id: str,
        name: str,
        *,
        match: dict[str, Any],
        timeout: timedelta | float | None,  # noqa: ASYNC109 (how long to wait for the event, not a call deadline)
        consume: bool = False,
        since: datetime | None = None,
    ) -> dict[str, Any] | None:
        """Wait for an event named `name` whose data contains `match`; None if `timeout` passes first. Events
        sent since the previous step finished count, even if they came before this wait was stored. A consuming
        wait takes the event for itself (the user's answer to a question is not also a new chat turn)."""
        record = self._enter(step_id)
        if record is not None and record.status == "completed":
            return record.output  # type: ignore[no-any-return]
        ctx = self._ctx
        expires = ctx.clock.now() + timedelta(seconds=_seconds(timeout)) if timeout is not None else None
        outcome = await register_wait(
            ctx.runtime,
            ctx.run_id,
            step_id,
            name,
            match,
            since=since or self._since,
            expires_at=expires,
            consumes=consume,
            now=ctx.clock.now(),
        )
        if outcome.state == "pending" and outcome.expires_at is not None and outcome.expires_at <= ctx.clock.now():
            outcome = await time_out_wait(ctx.runtime, ctx.run_id, step_id, ctx.clock.now())
        if outcome.state == "cancelled":
            raise RunAborted(f"run {ctx.run_id} cancelled")
        if outcome.state == "pending":
            raise Suspend("waiting", outcome.expires_at, wait_step=step_id)
        # The wait began when the step before it ended (events since then count): its row is written only now.
        await self._save(step_id, kind="wait", status="completed", output=outcome.event, started_at=self._since)
        return outcome.event

    async def send_event(
        self, step_id: str, name: str, data: dict[str, Any], *, dedupe_key: str | None = None
    ) -> dict[str, Any]:
        """Send an event once per run and step (a replay does not send it again)."""
        runtime = self._ctx.runtime
        key = dedupe_key or f"step:{self._ctx.key(step_id)}"

        async def send() -> dict[str, Any]:
            sent: Sent = await send_event(runtime, name, data, dedupe_key=key)
            return {"event_id": sent.event_id, "woken_runs": list(sent.woken_runs), "consumed": sent.consumed}

        return await self.run(step_id, send)

    async def start(
        self, step_id: str, workflow: Workflow[InputT] | str, input: InputT | dict[str, Any], **options: Any
    ) -> int:
        """Start another workflow and go on without waiting; a replay does not start it twice. An input that does
        not fit the workflow fails this step (see `start_run`)."""
        runtime, parent = self._ctx.runtime, self._ctx.run_id

        async def begin() -> int:
            started = await start_run(runtime, workflow, input, dedupe_key=f"start:{parent}:{step_id}", **options)
            return started.run_id

        return await self.run(step_id, begin)

    async def invoke(
        self,
        step_id: str,
        workflow: Workflow[InputT] | str,
        input: InputT | dict[str, Any],
        *,
        timeout: timedelta | float | None = None,  # noqa: ASYNC109
        result: type[T] | TypeAdapter[T] | None = None,
    ) -> Any:
        """Start another workflow and wait for its output (as `result`, if given). Its failure raises `StepFailed`
        here."""
        runtime, parent = self._ctx.runtime, self._ctx.run_id

        async def begin() -> int:
            started = await start_run(
                runtime, workflow, input, dedupe_key=f"invoke:{parent}:{step_id}", parent_run_id=parent
            )
            return started.run_id

        child = await self.run(f"{step_id}.start", begin)
        # The child may finish before this wait is stored; its event is unique to it, so any age matches.
        event = await self.wait_for_event(
            f"{step_id}.result", "run.finished", match={"run_id": child}, timeout=timeout, since=EPOCH
        )
        name = workflow if isinstance(workflow, str) else workflow.name
        if event is None:
            raise StepFailed(step_id, f"workflow {name} (run {child}) did not finish in time", reason="child")
        finished = event["data"]
        if finished["status"] != "completed":
            error = f"workflow {name} (run {child}) {finished['status']}: {finished.get('error')}"
            raise StepFailed(step_id, error, reason="child")
        output = finished.get("output")
        return output if result is None else data.decode(result, output)
