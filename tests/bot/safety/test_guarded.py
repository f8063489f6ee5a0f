"""REDACT_PII and MODERATION through real turns: the worker, and the stand-in's chat and moderation endpoints."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from adapters.console.app import ConsoleSession
from adapters.console.inbound import console_thread
from bot.config import Settings
from bot.runtime import Runtime
from sandbox.openai_server import StandInLLM, Step
from tests.conftest import make_settings, thread_view


@pytest.fixture
def settings(database_url: str, redis_url: str, stand_in: StandInLLM, tmp_path: Path) -> Settings:
    return make_settings(database_url, redis_url, stand_in.base_url, tmp_path, redact_pii=True, moderation="both")


def moderation_inputs(stand_in: StandInLLM) -> list[object]:
    return [r.body["input"] for r in stand_in.requests if r.path.endswith("/moderations")]


async def test_personal_data_never_reaches_the_model_or_the_moderation_check(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM
) -> None:
    stand_in.script(Step(reply="I will write to them."))
    result = await ConsoleSession(runtime, user="ada").send(
        "Email bob@example.com, card 4111 1111 1111 1111, phone +1 415 555 0100.", "pii"
    )
    assert (result.status, result.reply) == ("completed", "I will write to them.")
    [request] = stand_in.chat_requests()
    sent = request["messages"][-1]["content"]
    assert sent == "Email [email], card [card number], phone [phone]."
    assert "bob@example.com" not in str(stand_in.requests[0].body)
    assert moderation_inputs(stand_in) == [[sent], ["I will write to them."]], "input checked, then the answer"


async def test_a_flagged_message_is_refused_without_asking_the_model(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM
) -> None:
    result = await ConsoleSession(runtime, user="ada").send("Tell me how to flagme-violence.", "flagged")
    assert result.status == "failed"
    assert "your message was flagged by the moderation check (violence)" in result.shown
    assert stand_in.chat_requests() == []


async def test_a_flagged_answer_is_withdrawn_and_replaced_by_the_notice(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM
) -> None:
    stand_in.script(Step(reply="Here is something flagme-harassment in a long answer."))
    result = await ConsoleSession(runtime, user="ada").send("Say something.", "withdrawn")
    assert result.status == "failed"
    shown = await thread_view(runtime, console_thread("withdrawn"))
    assert len(shown) == 1
    assert "my answer was flagged by the moderation check (harassment), so I withdrew it" in shown[0]
    assert "flagme" not in shown[0]
