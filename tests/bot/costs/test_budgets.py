"""Token budgets through real turns: the worker, Postgres, and the stand-in model reporting its usage."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from adapters.console.app import ConsoleSession
from bot.clock import FakeClock
from bot.config import Settings
from bot.costs.budgets import period_starts
from bot.runtime import Runtime
from sandbox.openai_server import StandInLLM, Step
from tests.conftest import make_settings

# Mid-afternoon on the 14th: the day resets at midnight, the month on the 1st.
NOON = datetime(2026, 12, 14, 15, 30, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOON)


@pytest.fixture
def settings(database_url: str, redis_url: str, stand_in: StandInLLM, tmp_path: Path) -> Settings:
    # One turn of the stand-in takes some tens of tokens: the first turn of a day fits, the second does not.
    return make_settings(database_url, redis_url, stand_in.base_url, tmp_path, budget_user_daily_tokens=10)


async def test_a_user_over_the_daily_budget_is_told_when_it_resets_and_others_are_not_held(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM, clock: FakeClock
) -> None:
    stand_in.script(Step(reply="First answer."))
    ada = ConsoleSession(runtime, user="ada")
    first = await ada.send("Tell me something.", "budget")
    assert (first.status, first.reply) == ("completed", "First answer.")

    refused = await ada.send("And another thing?", "budget")
    assert refused.status == "failed"
    assert "Your daily token budget is used up" in refused.shown
    assert "of 10 tokens" in refused.shown
    assert "resets at 00:00 UTC, in 8 h 30 min" in refused.shown
    assert len(stand_in.chat_requests()) == 1, "the refused turn never reached the model"

    stand_in.script(Step(reply="Grace's answer."))
    grace = await ConsoleSession(runtime, user="grace").send("My own question.", "budget-2")
    assert (grace.status, grace.reply) == ("completed", "Grace's answer.")

    clock.advance(timedelta(hours=9))  # past midnight: a new day
    stand_in.script(Step(reply="A new day's answer."))
    again = await ada.send("Back again.", "budget")
    assert (again.status, again.reply) == ("completed", "A new day's answer.")


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("budget_workspace_monthly_tokens", "This workspace's monthly token budget is used up"),
        ("budget_user_monthly_tokens", "Your monthly token budget is used up"),
    ],
)
async def test_a_monthly_budget_resets_on_the_first(
    runtime: Runtime, stand_in: StandInLLM, clock: FakeClock, setting: str, expected: str
) -> None:
    from jobs.worker import in_process_worker

    runtime.settings = runtime.settings.model_copy(update={"budget_user_daily_tokens": 0, setting: 10})
    async with in_process_worker(runtime.settings, clock=clock):
        session = ConsoleSession(runtime, user="ada")
        assert (await session.send("First.", "month")).status == "completed"
        refused = await ConsoleSession(runtime, user="ada").send("Second.", "month")
        assert expected in refused.shown
        assert "resets on 1 Jan at 00:00 UTC, in 17 days" in refused.shown
        clock.advance(timedelta(days=18))
        assert (await session.send("Third.", "month")).status == "completed"


def test_periods_are_utc_days_and_calendar_months() -> None:
    day, month, next_day, next_month = period_starts(datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    assert day == datetime(2026, 12, 31, tzinfo=UTC)
    assert month == datetime(2026, 12, 1, tzinfo=UTC)
    assert next_day == datetime(2027, 1, 1, tzinfo=UTC)
    assert next_month == datetime(2027, 1, 1, tzinfo=UTC)
    assert period_starts(datetime(2027, 1, 31, 8, tzinfo=UTC))[3] == datetime(2027, 2, 1, tzinfo=UTC)
