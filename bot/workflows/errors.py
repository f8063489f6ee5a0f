"""How steps and runs end abnormally.

NonRetriableError   raised by a step's code: fail the step now, no retries
  InvalidWorkflowInput  an input that does not fit its workflow's input type (refused at the start)
StepFailed          raised into the workflow when a step has failed for good (it may catch it)
RunAborted          the run was cancelled or another worker took over its lease: stop, write nothing
Suspend             internal: the run must wait (sleep, event, retry backoff); the engine parks it
"""

from __future__ import annotations

from datetime import datetime

from pydantic import ValidationError

from bot.errors import BotError


class NonRetriableError(BotError):
    """Raise from a step to fail it at once. `user_message`, when given, is what the user should be told."""

    def __init__(self, detail: str, user_message: str = "") -> None:
        super().__init__(detail)
        self.user_message = user_message


class InvalidWorkflowInput(NonRetriableError):
    """Raised where a run is started (and where a stored input is read back): not retried, since the same input
    would fail the same way. Says which fields are wrong."""

    def __init__(self, workflow: str, error: ValidationError) -> None:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'the input'}: {problem['msg']}"
            for problem in error.errors()
        )
        super().__init__(f"input of workflow {workflow!r} does not fit {error.title}: {problems}")
        self.workflow = workflow


class StepFailed(BotError):
    """`reason` says why, for whoever tells the user: "refused" (not retriable), "gave_up" (retries ran out),
    "interrupted" (the run's workers kept dying), "child" (an invoked workflow failed or timed out)."""

    def __init__(
        self,
        step_id: str,
        error: str,
        user_message: str = "",
        service: str = "",
        attempts: int = 0,
        reason: str = "refused",
    ) -> None:
        super().__init__(f"step {step_id!r} failed: {error}")
        self.step_id = step_id
        self.reason = reason
        self.attempts = attempts
        self.error = error
        self.user_message = user_message
        self.service = service


class RunAborted(BaseException):
    pass


class Suspend(BaseException):  # control flow, like RunAborted
    def __init__(self, status: str, wake_at: datetime | None, wait_step: str | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.wake_at = wake_at
        self.wait_step = wait_step
