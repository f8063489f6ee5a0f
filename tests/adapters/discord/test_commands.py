"""Slash commands over the sandbox gateway: INTERACTION_CREATE in, deferred within Discord's 3 s, completed with an
ephemeral follow-up, and /ask answered by the real worker in a thread."""

from __future__ import annotations

import asyncio
import time

import pytest

from adapters.discord.gateway import DiscordGateway
from sandbox.openai_server import StandInLLM, Step
from tests.adapters.discord.conftest import World
from tests.conftest import wait_for

EPHEMERAL = 1 << 6
DEFERRED_CHANNEL_MESSAGE = 5


async def test_slash_ask_is_deferred_in_time_completed_and_answered_in_a_thread(
    world: World, gateway: DiscordGateway, worker: asyncio.Task[None], stand_in: StandInLLM
) -> None:
    stand_in.script(Step(reply="Forty-two."))
    started = time.monotonic()
    interaction = await world.fake.slash_command(world.general, "ask", {"question": "Meaning of life?"}, user=world.ada)

    followups = await wait_for(lambda: world.fake.followups)
    at, callback = world.fake.interaction_callbacks[0]
    assert callback["interaction"] == interaction["id"]
    assert callback["type"] == DEFERRED_CHANNEL_MESSAGE
    assert callback["data"]["flags"] & EPHEMERAL
    assert at - started < 3.0, "Discord drops interactions not answered within 3 s"
    assert followups[0]["content"] == "On it; the answer will appear in the thread."
    assert followups[0]["flags"] & EPHEMERAL, "only the user who asked sees the acknowledgement"

    question = world.fake.texts(world.general)
    assert question == [f"<@{world.ada['id']}> asked: Meaning of life?"]
    thread = await wait_for(lambda: world.fake.threads_of(world.general))
    await wait_for(lambda: world.fake.bot_texts(thread[0]["id"]) == ["Forty-two."])
    assert stand_in.chat_requests()[-1]["messages"][-1]["content"] == "Meaning of life?"


async def test_chain_list_answers_the_user_alone(world: World, gateway: DiscordGateway) -> None:
    await world.fake.slash_command(world.general, "chain", {"text": "list"}, user=world.ada)
    followups = await wait_for(lambda: world.fake.followups)
    assert "media-digest" in followups[0]["content"]
    assert "/chain run NAME" in followups[0]["content"]
    assert followups[0]["flags"] & EPHEMERAL
    assert world.fake.texts(world.general) == [], "a listing is for the user who asked, not the channel"


async def test_slash_ask_inside_a_thread_is_answered_in_that_thread(
    world: World, gateway: DiscordGateway, worker: asyncio.Task[None], stand_in: StandInLLM
) -> None:
    stand_in.script(Step(reply="First."), Step(reply="Second, in the same thread."))
    asked = await world.fake.user_message(world.general, "start", author=world.ada, mention_bot=True)
    await wait_for(lambda: world.fake.bot_texts(asked["id"]) == ["First."])
    await world.fake.slash_command(asked["id"], "ask", {"question": "and then?"}, user=world.ada)
    await wait_for(lambda: world.fake.bot_texts(asked["id"]) == ["First.", "Second, in the same thread."])
    assert len(world.fake.threads_of(world.general)) == 1


async def test_slash_ask_in_a_direct_message_is_answered_there(
    world: World, gateway: DiscordGateway, worker: asyncio.Task[None], stand_in: StandInLLM
) -> None:
    stand_in.script(Step(reply="Privately answered."))
    dm = world.fake.add_dm(world.ada)
    await world.fake.slash_command(dm, "ask", {"question": "just between us?"}, user=world.ada)
    await wait_for(lambda: world.fake.bot_texts(dm) == ["Privately answered."])
    assert world.fake.followups[0]["content"] == "On it; the answer will appear in the thread."


@pytest.mark.parametrize("discord_overrides", [{"allowed_roles": "helpers"}], indirect=True)
async def test_a_slash_command_from_a_member_without_an_allowed_role_is_refused_privately(
    world: World, gateway: DiscordGateway
) -> None:
    await world.fake.slash_command(world.general, "ask", {"question": "may I?"}, user=world.ada)
    followups = await wait_for(lambda: world.fake.followups)
    assert (
        followups[0]["content"] == "Sorry, I only answer members with certain roles. Ask an administrator for access."
    )
    assert followups[0]["flags"] & EPHEMERAL
    assert world.fake.texts(world.general) == [], "nothing public, no thread"
