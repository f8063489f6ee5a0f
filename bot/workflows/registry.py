"""Workflow definitions by name. A run stores the name; the worker looks the function up in the `Workflows` its
composition root gave it (the bot's own are gathered in `bot.catalog`), so the engine knows no workflow itself."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
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

    async def __call__(self, ctx: WorkflowContext, input: dict[str, Any]) -> Any:
        return await self.fn(ctx, input)


def workflow(name: str, *, max_step_attempts: int = 4, description: str = "") -> Callable[[WorkflowFn], Workflow]:
    """Define a workflow (it still has to be registered in the `Workflows` a worker runs)."""

    def define(fn: WorkflowFn) -> Workflow:
        return Workflow(name, fn, max_step_attempts, description or (fn.__doc__ or "").strip())

    return define


class Workflows:
    """The workflows one worker can run, by name; two with one name are a mistake caught at start-up."""

    def __init__(self, *workflows: Workflow) -> None:
        self._by_name: dict[str, Workflow] = {}
        for definition in workflows:
            if definition.name in self._by_name:
                raise ValueError(f"two workflows are named {definition.name!r}")
            self._by_name[definition.name] = definition

    def get(self, name: str) -> Workflow | None:
        return self._by_name.get(name)

    def with_(self, *more: Workflow) -> Workflows:
        """These and `more` (tests add their own to the bot's)."""
        return Workflows(*self._by_name.values(), *more)

    def __iter__(self) -> Iterator[Workflow]:
        return iter(self._by_name.values())

    def __contains__(self, name: object) -> bool:
        return name in self._by_name
