"""Each model call's usage recorded against who asked, priced, and shown per run."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import select

from adapters.console.app import ConsoleSession
from adapters.console.inbound import console_thread
from bot.chain_run import chain_command
from bot.config import Settings
from bot.costs.models import TOKEN_USAGE
from bot.costs.usage import cost_of, price_of
from bot.events import SlashCommand
from bot.ports import Usage
from bot.runtime import Runtime
from sandbox.openai_server import StandInLLM, Step
from tests.conftest import run_bot, subprocess_env, wait_for


async def usage_rows(rt: Runtime) -> list[dict[str, object]]:
    async with rt.autocommit.connect() as conn:
        rows = await conn.execute(select(TOKEN_USAGE).order_by(TOKEN_USAGE.c.id))
        return [dict(row) for row in rows.mappings()]


async def test_a_turn_records_the_tokens_the_model_reported_and_runs_show_prices_them(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM
) -> None:
    stand_in.script(Step(reply="Twelve words of answer, give or take, for the usage record."))
    result = await ConsoleSession(runtime, user="ada").send("How much does this cost?", "costs")
    assert result.status == "completed"

    [row] = await usage_rows(runtime)
    request = stand_in.chat_requests()[0]
    assert request["stream_options"] == {"include_usage": True}
    payer = (row["run_id"], row["platform"], row["user_id"], row["purpose"])
    assert payer == (result.run_id, "console", "ada", "reply")
    assert row["reported"] is True
    prompt_tokens, completion_tokens = row["prompt_tokens"], row["completion_tokens"]
    assert isinstance(prompt_tokens, int)
    assert isinstance(completion_tokens, int)
    assert prompt_tokens > 0
    assert completion_tokens > 0
    assert row["model"] == "gpt-4o"
    expected = (prompt_tokens * 2.50 + completion_tokens * 10.00) / 1_000_000
    assert row["cost_usd"] == expected

    code, out, err = await run_bot("runs", "show", str(result.run_id), env=subprocess_env(runtime.settings))
    assert code == 0, err
    assert (
        f"model: 1 call, {row['prompt_tokens']:,} tokens in, {row['completion_tokens']:,} out, ${expected:.4f}" in out
    )
    code, out, err = await run_bot("usage", env=subprocess_env(runtime.settings))
    assert code == 0, err
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in out.splitlines() if line.startswith("│")]
    total = f"{prompt_tokens + completion_tokens:,}"
    assert rows == [
        ["console", "local", "(workspace)", total, total, f"${expected:.4f}", "- / -"],
        ["console", "local", "ada", total, total, f"${expected:.4f}", "- / -"],
    ]
    code, out, err = await run_bot("runs", "show", str(result.run_id), "--json", env=subprocess_env(runtime.settings))
    assert code == 0, err
    assert json.loads(out)["usage"] == {
        "prompt_tokens": row["prompt_tokens"],
        "completion_tokens": row["completion_tokens"],
        "cost_usd": expected,
        "calls": 1,
    }


async def test_a_chain_run_records_each_model_call_on_the_asking_user(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM
) -> None:
    stand_in.script(Step(reply="We chose the blue logo."), Step(reply="A summary."))
    await ConsoleSession(runtime, user="grace").send("Blue or red logo? Let's go blue.", "chains")
    reply = await chain_command(
        runtime, SlashCommand("ev-chain-1", console_thread("chains"), "grace", "/chain", "run thread-summary")
    )
    assert reply.accepted, reply.text

    async def recorded() -> list[dict[str, object]]:
        return [row for row in await usage_rows(runtime) if row["purpose"] == "chain"]

    rows = await wait_for(recorded)
    assert len(rows) == 1
    assert rows[0]["user_id"] == "grace"
    assert rows[0]["run_id"] != (await usage_rows(runtime))[0]["run_id"], "the chain's own run, not the turn's"


def test_prices_match_a_dated_model_by_its_longest_known_prefix(settings: Settings) -> None:
    assert price_of(settings, "gpt-4o-mini-2024-07-18") == (0.15, 0.60)
    assert price_of(settings, "gpt-4o-2024-08-06") == (2.50, 10.00)
    assert price_of(settings, "llama3:8b") is None
    own = settings.model_copy(update={"model_prices": {"llama3": (0.1, 0.2), "gpt-4o": (1.0, 1.0)}})
    assert price_of(own, "llama3:8b") == (0.1, 0.2)
    assert price_of(own, "gpt-4o") == (1.0, 1.0), "the operator's price wins over the shipped one"
    assert cost_of(own, Usage("llama3:8b", 1_000_000, 500_000)) == 0.1 + 0.1
    assert cost_of(settings, Usage("unknown-model", 1000, 1000)) == 0.0


def test_model_prices_are_read_from_json_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_PRICES", '{"my-model": [0.5, 1.5]}')
    assert Settings(_env_file=None).model_prices == {"my-model": (0.5, 1.5)}
