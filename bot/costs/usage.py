"""Recording each model call's tokens against who asked, and reading them back per run and per payer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.config import Settings
from bot.costs.models import TOKEN_USAGE
from bot.events import ThreadRef
from bot.ports import Usage
from bot.runtime import Runtime

# USD per million tokens (in, out), OpenAI's list prices; MODEL_PRICES adds to and overrides these.
SHIPPED_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-3.5-turbo": (0.50, 1.50),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    "text-embedding-3-small": (0.02, 0.0),
    "text-embedding-3-large": (0.13, 0.0),
}


@dataclass(frozen=True, slots=True)
class Payer:
    """Whose budget a call counts against: a user of a workspace, in the platform's own ids."""

    platform: str
    workspace_id: str
    user_id: str

    @classmethod
    def of(cls, thread: ThreadRef, user_id: str) -> Payer:
        return cls(thread.platform, thread.workspace_id, user_id)


@dataclass(frozen=True, slots=True)
class Spent:
    """Tokens used, with their cost in USD."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    calls: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def price_of(settings: Settings, model: str) -> tuple[float, float] | None:
    """USD per million tokens in and out for `model`: its own entry or its longest priced prefix (a dated
    version, `gpt-4o-2024-08-06`, costs what `gpt-4o` does). None: no price known, counted as free."""
    prices = {**SHIPPED_PRICES, **settings.model_prices}
    if model in prices:
        return prices[model]
    known = [name for name in prices if model.startswith(name)]
    return prices[max(known, key=len)] if known else None


def cost_of(settings: Settings, usage: Usage) -> float:
    price = price_of(settings, usage.model)
    if price is None:
        return 0.0
    return (usage.prompt_tokens * price[0] + usage.completion_tokens * price[1]) / 1_000_000


async def record_usage(runtime: Runtime, *, run_id: int | None, payer: Payer, purpose: str, usage: Usage) -> None:
    """Keep one call's usage. A call whose stream broke off records nothing: its usage never arrived."""
    if usage.total_tokens <= 0:
        return
    async with runtime.autocommit.connect() as conn:
        await conn.execute(
            insert(TOKEN_USAGE).values(
                run_id=run_id,
                platform=payer.platform,
                workspace_id=payer.workspace_id,
                user_id=payer.user_id,
                model=usage.model[:128],
                purpose=purpose,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                reported=usage.reported,
                cost_usd=cost_of(runtime.settings, usage),
                # The runtime's clock, not the database's: budgets read days and months by that clock.
                created_at=runtime.clock.now(),
            )
        )


async def run_usage(conn: AsyncConnection, run_id: int) -> Spent:
    """What a run's model calls took (its child runs have their own)."""
    u = TOKEN_USAGE.c
    query = select(
        func.coalesce(func.sum(u.prompt_tokens), 0),
        func.coalesce(func.sum(u.completion_tokens), 0),
        func.coalesce(func.sum(u.cost_usd), 0.0),
        func.count(),
    ).where(u.run_id == run_id)
    row = (await conn.execute(query)).one()
    return Spent(int(row[0]), int(row[1]), float(row[2]), int(row[3]))


@dataclass(frozen=True, slots=True)
class PayerTotals:
    user_day: int
    user_month: int
    workspace_day: int
    workspace_month: int


async def payer_totals(runtime: Runtime, payer: Payer, *, day_start: datetime, month_start: datetime) -> PayerTotals:
    """Tokens the user and their workspace spent since the day's and the month's start, in one indexed read."""
    u = TOKEN_USAGE.c
    tokens = u.prompt_tokens + u.completion_tokens
    mine = u.user_id == payer.user_id
    today = u.created_at >= day_start
    query = select(
        func.coalesce(func.sum(tokens).filter(mine, today), 0),
        func.coalesce(func.sum(tokens).filter(mine), 0),
        func.coalesce(func.sum(tokens).filter(today), 0),
        func.coalesce(func.sum(tokens), 0),
    ).where(u.platform == payer.platform, u.workspace_id == payer.workspace_id, u.created_at >= month_start)
    async with runtime.autocommit.connect() as conn:
        row = (await conn.execute(query)).one()
    return PayerTotals(int(row[0]), int(row[1]), int(row[2]), int(row[3]))


@dataclass(frozen=True, slots=True)
class SpendRow:
    platform: str
    workspace_id: str
    user_id: str  # "" for the workspace's total
    day_tokens: int
    month_tokens: int
    month_cost_usd: float


async def spend_by_payer(
    runtime: Runtime, *, day_start: datetime, month_start: datetime, limit: int = 50
) -> list[SpendRow]:
    """This month's spend per workspace (user "" rows), each followed by its users, most tokens first."""
    u = TOKEN_USAGE.c
    tokens = u.prompt_tokens + u.completion_tokens
    user = func.coalesce(u.user_id, "")
    query = (
        select(
            u.platform,
            u.workspace_id,
            user.label("user_id"),
            func.coalesce(func.sum(tokens).filter(u.created_at >= day_start), 0),
            func.coalesce(func.sum(tokens), 0),
            func.coalesce(func.sum(u.cost_usd), 0.0),
        )
        .where(u.created_at >= month_start)
        # Each user's row and their workspace's total (user_id NULL there) in one pass.
        .group_by(func.grouping_sets(tuple_(u.platform, u.workspace_id, u.user_id), tuple_(u.platform, u.workspace_id)))
        # Each workspace's total, then its users by spend.
        .order_by(u.platform, u.workspace_id, u.user_id.is_not(None), func.sum(tokens).desc(), u.user_id)
        .limit(limit)
    )
    async with runtime.autocommit.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [SpendRow(r[0], r[1], r[2] or "", int(r[3]), int(r[4]), float(r[5])) for r in rows]
