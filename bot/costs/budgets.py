"""Token budgets per user and per workspace, by UTC day and calendar month (the BUDGET_* settings).

Checked before each model call a user's request makes, against what is recorded (`bot.costs.usage`): a call that
starts under the budget finishes, so a budget can be passed by at most one call's tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.costs.usage import Payer, payer_totals
from bot.errors import UserFacingError
from bot.runtime import Runtime


class BudgetExhausted(UserFacingError):
    def __init__(self, user_message: str, resets_at: datetime) -> None:
        super().__init__(user_message)
        self.resets_at = resets_at


@dataclass(frozen=True, slots=True)
class _Limit:
    whose: str  # "your" or "this workspace's"
    period: str  # "daily" or "monthly"
    limit: int
    used: int
    resets_at: datetime


def any_budget(runtime: Runtime) -> bool:
    s = runtime.settings
    return any(
        limit > 0
        for limit in (
            s.budget_user_daily_tokens,
            s.budget_user_monthly_tokens,
            s.budget_workspace_daily_tokens,
            s.budget_workspace_monthly_tokens,
        )
    )


def period_starts(now: datetime) -> tuple[datetime, datetime, datetime, datetime]:
    """This UTC day's and month's starts, and the next ones (when the budgets reset)."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    next_month = (month + timedelta(days=32)).replace(day=1)
    return day, month, day + timedelta(days=1), next_month


async def check_budget(runtime: Runtime, payer: Payer) -> None:
    """Raise `BudgetExhausted`, with when it resets, if the user or their workspace has used up a budget. Free
    (no statement) when no budget is set."""
    if not any_budget(runtime):
        return
    now = runtime.clock.now()
    day, month, next_day, next_month = period_starts(now)
    totals = await payer_totals(runtime, payer, day_start=day, month_start=month)
    s = runtime.settings
    limits = [
        _Limit("your", "daily", s.budget_user_daily_tokens, totals.user_day, next_day),
        _Limit("your", "monthly", s.budget_user_monthly_tokens, totals.user_month, next_month),
        _Limit("this workspace's", "daily", s.budget_workspace_daily_tokens, totals.workspace_day, next_day),
        _Limit("this workspace's", "monthly", s.budget_workspace_monthly_tokens, totals.workspace_month, next_month),
    ]
    spent = [limit for limit in limits if 0 < limit.limit <= limit.used]
    if not spent:
        return
    # The one that frees up last is the one the user must wait for.
    worst = max(spent, key=lambda limit: limit.resets_at)
    raise BudgetExhausted(refusal(worst, now), worst.resets_at)


def refusal(limit: _Limit, now: datetime) -> str:
    when = limit.resets_at.strftime("%H:%M UTC") if limit.period == "daily" else limit.resets_at.strftime("%-d %b")
    at = f"at {when}" if limit.period == "daily" else f"on {when} at 00:00 UTC"
    return (
        f"{limit.whose.capitalize()} {limit.period} token budget is used up ({limit.used:,} of {limit.limit:,} "
        f"tokens). It resets {at}, in {_wait(limit.resets_at - now)}."
    )


def _wait(left: timedelta) -> str:
    minutes = max(1, math.ceil(left.total_seconds() / 60))  # "in 0 min" would say it has reset
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} day{'s' if days != 1 else ''}" + (f" {hours} h" if hours else "")
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"
