"""Workflow definitions by name. A run stores the name; the worker looks the function up in the `Workflows` its
composition root gave it (the bot's own are gathered in `bot.catalog`), so the engine knows no workflow itself.

A workflow declares its input's type (`@workflow(NAME, input=ReminderInput)`): a start checks the input against it
and stores it as JSON, and each resumption reads the JSON back as that type."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from pydantic import ValidationError

from bot.workflows import data
from bot.workflows.errors import InvalidWorkflowInput

if TYPE_CHECKING:
    from bot.workflows.steps import WorkflowContext

InputT = TypeVar("InputT")
WorkflowFn = Callable[["WorkflowContext", InputT], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Workflow(Generic[InputT]):
    name: str
    fn: WorkflowFn[InputT]
    # What `fn` is given: a dataclass or pydantic model read from the stored JSON (a plain dict by default).
    input_type: Any = dict[str, Any]
    # Attempts per step before it fails for good (a step may override it).
    max_step_attempts: int = 4
    description: str = ""

    async def __call__(self, ctx: WorkflowContext, input: InputT) -> Any:
        return await self.fn(ctx, input)

    def encode(self, input: object) -> Any:
        """The input as it is stored, checked against the input type: the value itself or a dict of its fields.
        Raises `InvalidWorkflowInput`, so a bad input is refused at the start and not found missing mid-run."""
        try:
            return data.encode(self.input_type, input)
        except ValidationError as exc:
            raise InvalidWorkflowInput(self.name, exc) from None

    def decode(self, stored: Any) -> InputT:
        """The stored input as the input type. Raises `InvalidWorkflowInput`."""
        try:
            value: InputT = data.decode(self.input_type, stored)
        except ValidationError as exc:
            raise InvalidWorkflowInput(self.name, exc) from None
        return value


@overload
def workflow(
    name: str, *, input: type[InputT], max_step_attempts: int = 4, description: str = ""
) -> Callable[[WorkflowFn[InputT]], Workflow[InputT]]: ...


@overload
def workflow(
    name: str, *, input: None = None, max_step_attempts: int = 4, description: str = ""
) -> Callable[[WorkflowFn[dict[str, Any]]], Workflow[dict[str, Any]]]: ...


def workflow(
    name: str, *, input: Any = None, max_step_attempts: int = 4, description: str = ""
) -> Callable[[WorkflowFn[Any]], Workflow[Any]]:
    """Define a workflow taking `input` (it still has to be registered in the `Workflows` a worker runs)."""
    kind = dict[str, Any] if input is None else input

    def define(fn: WorkflowFn[Any]) -> Workflow[Any]:
        return Workflow(name, fn, kind, max_step_attempts, description or (fn.__doc__ or "").strip())

    return define


class Workflows:
    """The workflows one worker can run, by name; two with one name are a mistake caught at start-up."""

    def __init__(self, *workflows: Workflow[Any]) -> None:
        self._by_name: dict[str, Workflow[Any]] = {}
        for definition in workflows:
            if definition.name in self._by_name:
                raise ValueError(f"two workflows are named {definition.name!r}")
            self._by_name[definition.name] = definition

    def get(self, name: str) -> Workflow[Any] | None:
        return self._by_name.get(name)

    def with_(self, *more: Workflow[Any]) -> Workflows:
        """These and `more` (tests add their own to the bot's)."""
        return Workflows(*self._by_name.values(), *more)

    def __iter__(self) -> Iterator[Workflow[Any]]:
        return iter(self._by_name.values())

    def __contains__(self, name: object) -> bool:
        return name in self._by_name
