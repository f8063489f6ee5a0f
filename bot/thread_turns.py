"""Whose turn it is: how overlapping messages in one thread become turns (CONVERSATION_STRATEGY).

Every user message still starts its own chat run at intake, so none can be lost; its run then waits here for the
thread's turn. The thread's unanswered messages and who took them (`messages.turn_run_id`) are the whole state,
in Postgres: a worker that dies mid-turn leaves its run to another worker (the run's lease), which finds the
messages taken by that same run and goes on. Each decision and take is made under a transaction-scoped advisory
lock on the thread, so two runs never take the same thread at once.

- burst: the run of the thread's newest message waits until the thread has been quiet for BURST_WINDOW_S, then
  takes every unanswered message at once (one answer to all of them); older messages' runs leave it to that one.
  While a turn runs, new messages wait for it to end and are then answered together.
- queue: one turn at a time, oldest message first.
- interrupt: the newest message stops the turn being answered (its run is cancelled; its partial answer stays)
  and takes every unanswered message, the interrupted one included.
- concurrent: each message at once, on its own (no wait, no lock).
"""

# The statements below are put together from constants of this module only, never from a value from outside.
# ruff: noqa: S608

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.intake import CHAT_TURN
from bot.workflows.errors import RunAborted
from bot.workflows.runs import cancel_run
from bot.workflows.steps import WorkflowContext

log = structlog.get_logger(__name__)

ACTIVE = "('pending', 'running', 'sleeping', 'waiting')"
# A message is open to be taken if nobody has it, or whoever took it is this run (a replay after a crash) or a
# run that is no longer active (cancelled by an interrupt or an operator, failed before answering).
# Only messages a chat turn answers: one that shared audio or a document is the media flow's, on its own.
_OPEN = f"""(
    (
        m.status = 'pending'
        OR (m.status = 'processing' AND (m.turn_run_id IS NULL OR m.turn_run_id = :run OR NOT EXISTS (
            SELECT 1 FROM workflow_runs r WHERE r.id = m.turn_run_id AND r.status IN {ACTIVE})))
        OR (m.id = :me AND m.status = 'failed')
    )
    AND EXISTS (SELECT 1 FROM workflow_runs c WHERE c.id = m.run_id AND c.workflow = '{CHAT_TURN}')
)"""
_STATE = text(
    f"""
SELECT
    (SELECT max(m.id) FROM messages m WHERE m.thread_id = :thread AND m.role = 'user' AND {_OPEN}) AS newest,
    (SELECT min(m.id) FROM messages m WHERE m.thread_id = :thread AND m.role = 'user' AND {_OPEN}) AS oldest,
    (SELECT max(m.created_at) FROM messages m WHERE m.thread_id = :thread AND m.role = 'user' AND {_OPEN})
        AS newest_at,
    (SELECT bool_or(m.id = :me) FROM messages m WHERE m.thread_id = :thread AND m.role = 'user' AND {_OPEN})
        AS mine_open,
    (SELECT m.turn_run_id FROM messages m JOIN workflow_runs r ON r.id = m.turn_run_id
        WHERE m.thread_id = :thread AND m.role = 'user' AND m.status = 'processing' AND m.turn_run_id <> :run
        AND r.status IN {ACTIVE} ORDER BY m.id DESC LIMIT 1) AS busy_run,
    now() AS now
"""
)
_TAKE = text(
    f"""
UPDATE messages m SET status = 'processing', turn_run_id = :run, updated_at = now()
WHERE m.thread_id = :thread AND m.role = 'user' AND m.id <= :me AND m.id >= :first AND {_OPEN}
RETURNING m.id
"""
)
_LOCK = text("SELECT pg_advisory_xact_lock(1953723762, :thread)")  # 1953723762: 'turn' as a 32-bit key space

FIRST_POLL_S = 0.02
MAX_POLL_S = 0.5


@dataclass(frozen=True, slots=True)
class _State:
    newest: int | None
    oldest: int | None
    newest_at: datetime | None
    mine_open: bool
    busy_run: int | None
    now: datetime


async def take_turn(ctx: WorkflowContext, thread_id: int, message_id: int, strategy: str) -> list[int] | None:
    """Wait for `message_id`'s turn in its thread and take it: the ids of the messages this run answers, oldest
    first, its own last; None when another run answers it (or already has)."""
    runtime = ctx.runtime
    loop = asyncio.get_running_loop()
    deadline = loop.time() + runtime.settings.turn_wait_max_s
    params = {"thread": thread_id, "me": message_id, "run": ctx.run_id}
    delay = FIRST_POLL_S
    while True:
        if ctx.lease_lost:
            raise RunAborted(f"run {ctx.run_id}: lease lost or run cancelled while waiting for its turn")
        overdue = loop.time() > deadline
        async with runtime.engine.begin() as conn:
            await conn.execute(_LOCK, params)
            state = _State(**(await conn.execute(_STATE, params)).one()._mapping)
            if not state.mine_open:
                return None  # taken by a later message's turn, or answered
            step = _decide(strategy, state, message_id, runtime.settings.burst_window_s, overdue)
            if step.take:
                if overdue and state.busy_run is not None:
                    log.warning("waited too long for the turn before it; answering anyway", message_id=message_id)
                return await _take(conn, params, step.first)
        if step.interrupt is not None:
            # Its messages are open once its run is no longer active: the next look takes them with this one.
            await cancel_run(runtime, step.interrupt, reason=f"interrupted by a newer message ({message_id})")
            continue
        await asyncio.sleep(step.wait_s if step.exact else min(step.wait_s, delay))
        delay = min(delay * 1.5, MAX_POLL_S)


@dataclass(frozen=True, slots=True)
class _Step:
    take: bool = False
    first: int = 0  # the oldest message id to take
    wait_s: float = MAX_POLL_S  # else: look again after this long (at most; sooner while polls are young)
    exact: bool = False  # wait exactly wait_s (the rest of a burst window), not less
    interrupt: int | None = None  # cancel this run, then look again


def _decide(strategy: str, state: _State, me: int, window: float, overdue: bool) -> _Step:
    if overdue:
        return _Step(take=True)
    if strategy == "interrupt":
        if state.newest != me:
            return _Step()  # the newest message's run interrupts and answers this one with it
        if state.busy_run is not None:
            return _Step(interrupt=state.busy_run)
        return _Step(take=True)
    if state.busy_run is not None:
        return _Step()  # another turn is being answered: this one comes after it
    if strategy == "queue":
        return _Step(take=True, first=me) if state.oldest == me else _Step()
    if state.newest != me:  # burst
        return _Step()  # the newest message's run answers this one with it
    quiet_for = (state.now - state.newest_at).total_seconds() if state.newest_at is not None else window
    if quiet_for >= window:
        return _Step(take=True)
    return _Step(wait_s=window - quiet_for, exact=True)


async def _take(conn: AsyncConnection, params: dict[str, int], first: int) -> list[int]:
    rows = await conn.execute(_TAKE, {**params, "first": first})
    return sorted(int(row.id) for row in rows)
