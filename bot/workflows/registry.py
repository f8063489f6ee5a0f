"""Workflow definitions by name. A run stores the name; the worker looks the function up when it resumes it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.workflows.steps import WorkflowContext

WorkflowFn = Callable[["WorkflowContext", dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Workflow:
    name: str
    fn: WorkflowFn
    # Attempts per step before it fails for good (a step may override it).
    max_step_attempts: int = 4
    description: str = ""


REGISTRY: dict[str, Workflow] = {}


def workflow(name: str, *, max_step_attempts: int = 4, description: str = "") -> Callable[[WorkflowFn], WorkflowFn]:
    def register(fn: WorkflowFn) -> WorkflowFn:
        if name in REGISTRY and REGISTRY[name].fn is not fn:
            raise ValueError(f"two workflows are named {name!r}")
        REGISTRY[name] = Workflow(name, fn, max_step_attempts, description or (fn.__doc__ or "").strip())
        return fn

    return register


def load_builtin_workflows() -> None:
    """Import the modules that define the bot's workflows, so their decorators have registered them."""
    import bot.chain_run
    import bot.chat_turn
    import bot.followups.workflows
    import bot.media.workflow  # noqa: F401
