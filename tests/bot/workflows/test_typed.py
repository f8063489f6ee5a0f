"""Typed workflow data: inputs checked at the start and decoded on every resumption, step results read back as
the type they had when fresh, and the JSON of runs already in flight still read by the typed workflows."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import func, select

from bot.chat_turn import CONTEXT as CHAT_CONTEXT
from bot.chat_turn import Consumed, PreparedTurn
from bot.events import FileRef, ThreadRef
from bot.followups.workflows import reminder
from bot.media.filejob import MediaTurn
from bot.media.workflow import CONTEXT as MEDIA_CONTEXT
from bot.ports import ChatMessage
from bot.runtime import Runtime
from bot.workflows.errors import InvalidWorkflowInput
from bot.workflows.models import RUNS
from bot.workflows.registry import workflow
from bot.workflows.runs import start_run
from bot.workflows.steps import WorkflowContext
from tests.conftest import wait_for

THREAD = ThreadRef("console", "local", "console", "plans")
THREAD_JSON = {"platform": "console", "workspace_id": "local", "channel_id": "console", "thread_key": "plans"}
seen: list[str] = []


@dataclass(frozen=True, slots=True)
class Order:
    item: str
    count: int
    thread: ThreadRef


class Quote(BaseModel):
    total: float
    items: list[str]


async def _quote(order: Order) -> Quote:
    return Quote(total=order.count * 2.5, items=[order.item] * order.count)


@workflow("test.order", input=Order)
async def order_workflow(ctx: WorkflowContext, input: Order) -> Any:
    seen.append(f"input {type(input).__name__} {type(input.thread).__name__}")
    quote = await ctx.step.run("quote", lambda: _quote(input), result=Quote)
    seen.append(f"quote {type(quote).__name__}")
    await ctx.step.sleep("pause", 0.05)  # the run resumes: the quote comes back from its stored JSON
    return {"total": quote.total, "items": quote.items, "where": input.thread.thread_key}


@pytest.fixture(autouse=True)
def _reset() -> None:
    seen.clear()


async def _run(rt: Runtime, run_id: int) -> dict[str, Any] | None:
    async with rt.autocommit.connect() as conn:
        row = dict((await conn.execute(select(RUNS).where(RUNS.c.id == run_id))).mappings().one())
    return row if row["status"] in ("completed", "failed", "cancelled") else None


async def test_a_typed_input_and_step_result_are_the_same_types_fresh_and_replayed(
    runtime: Runtime, worker: asyncio.Task[None]
) -> None:
    started = await start_run(runtime, order_workflow, Order("pen", 3, THREAD))
    run = await wait_for(lambda: _run(runtime, started.run_id))
    assert run["status"] == "completed", run["error"]
    assert run["output"] == {"total": 7.5, "items": ["pen", "pen", "pen"], "where": "plans"}
    assert run["input"] == {"item": "pen", "count": 3, "thread": THREAD_JSON}, "stored as plain JSON fields"
    assert seen.count("input Order ThreadRef") >= 2, "each resumption decodes the input"
    assert set(seen) == {"input Order ThreadRef", "quote Quote"}, "the replayed quote is a Quote, not a dict"


async def test_a_wrong_input_is_refused_at_the_start_saying_which_field(runtime: Runtime) -> None:
    with pytest.raises(InvalidWorkflowInput) as refused:
        await start_run(runtime, order_workflow, {"item": "pen", "count": "many", "thread": THREAD_JSON})
    assert str(refused.value).startswith("input of workflow 'test.order' does not fit Order: count: ")
    with pytest.raises(InvalidWorkflowInput, match="thread: Field required"):
        await start_run(runtime, order_workflow, {"item": "pen", "count": 1})
    async with runtime.autocommit.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(RUNS))).scalar_one() == 0, "no run was made"


async def test_a_stored_input_that_does_not_fit_fails_its_run_with_the_reason(
    runtime: Runtime, worker: asyncio.Task[None]
) -> None:
    started = await start_run(runtime, "test.order", {"item": "pen"})  # by name: checked when it starts
    run = await wait_for(lambda: _run(runtime, started.run_id))
    assert run["status"] == "failed"
    assert run["error"].startswith("input of workflow 'test.order' does not fit Order: count: Field required")
    assert seen == [], "the workflow's code never ran on it"


@workflow("test.invoker")
async def invoker(ctx: WorkflowContext, input: dict[str, Any]) -> Any:
    quote = await ctx.step.invoke("order", order_workflow, Order("cup", 2, THREAD), result=Quote)
    seen.append(f"child {type(quote).__name__}")
    return {"total": quote.total}


async def test_an_invoked_workflow_gets_a_typed_input_and_returns_a_typed_output(
    runtime: Runtime, worker: asyncio.Task[None]
) -> None:
    started = await start_run(runtime, invoker, {})
    run = await wait_for(lambda: _run(runtime, started.run_id))
    assert run["status"] == "completed", run["error"]
    assert run["output"] == {"total": 5.0}
    assert "child Quote" in seen


def test_the_chat_turn_reads_context_stored_before_it_was_typed() -> None:
    stored = {
        "consumed": False,
        "message_id": 7,
        "thread_id": 3,
        "thread": THREAD_JSON,
        "user_id": "ada",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "history": 0,
    }
    turn = CHAT_CONTEXT.validate_python(stored)
    assert turn == PreparedTurn(7, 3, THREAD, "ada", [ChatMessage("system", "Be brief."), ChatMessage("user", "Hi")], 0)
    # The same JSON, with the fields added since at their defaults (messages answered with it, pictures shared).
    written = {**stored, "along": [], "files": False}
    assert CHAT_CONTEXT.dump_python(turn, mode="json") == written, "and writes the same JSON"
    assert CHAT_CONTEXT.validate_python({"consumed": True}) == Consumed()
    assert CHAT_CONTEXT.validate_python(None) is None


def test_the_media_turn_reads_context_stored_before_it_was_typed() -> None:
    file = {"file_id": "F1", "name": "call.wav", "mime_type": "audio/wav", "size": 10, "url": "https://x/f"}
    stored = {"message_id": 1, "thread_id": 2, "thread": THREAD_JSON, "user_id": "ada", "text": "", "files": [file]}
    turn = MEDIA_CONTEXT.validate_python(stored)
    assert turn == MediaTurn(1, 2, THREAD, "ada", "", [FileRef("F1", "call.wav", "audio/wav", 10, "https://x/f")])
    assert MEDIA_CONTEXT.dump_python(turn, mode="json") == stored


def test_a_reminder_reads_the_input_the_remind_command_stores() -> None:
    stored = {"thread": THREAD_JSON, "user_id": "ada", "text": "stretch", "due": "2030-05-01T12:00:00+00:00"}
    decoded = reminder.decode(stored)
    assert decoded.due == datetime(2030, 5, 1, 12, tzinfo=UTC)
    assert decoded.thread == THREAD


# The worker fixture runs these beside the bot's own workflows.
TEST_WORKFLOWS = (order_workflow, invoker)
