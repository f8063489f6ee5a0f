"""A model call on someone's account: their budget checked before it, its tokens recorded after it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from sqlalchemy.exc import SQLAlchemyError

from bot.costs.budgets import check_budget
from bot.costs.usage import Payer, record_usage
from bot.ports import Usage
from bot.workflows.steps import WorkflowContext

log = structlog.get_logger(__name__)


@asynccontextmanager
async def metered(ctx: WorkflowContext, payer: Payer, purpose: str) -> AsyncIterator[Usage]:
    """Raise `BudgetExhausted` if `payer` is over a budget; else yield the `Usage` to hand to `stream_chat`, and
    record it when the block ends, however it ends (a call that failed after its usage arrived still cost)."""
    await check_budget(ctx.runtime, payer)
    usage = Usage()
    try:
        yield usage
    finally:
        try:
            await record_usage(ctx.runtime, run_id=ctx.run_id, payer=payer, purpose=purpose, usage=usage)
        except SQLAlchemyError as exc:
            # Accounting, not the user's data: the answer stands (a retry would call the model again).
            log.warning("token usage not recorded", run_id=ctx.run_id, tokens=usage.total_tokens, error=str(exc))
