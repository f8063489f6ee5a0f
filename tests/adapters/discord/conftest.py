"""Discord fixtures: the sandbox Discord (REST and gateway over real sockets), settings pointing at it, and
discord.py's own client running our gateway handler in the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import discord
import pytest
from discord.gateway import DiscordWebSocket
from sqlalchemy import select

from adapters.discord.gateway import DiscordGateway
from bot.config import Settings
from bot.events import IncomingMessage
from bot.guards import Admitted
from bot.intake import Accepted, accept
from bot.models import MESSAGES
from bot.runtime import Runtime
from sandbox.discord_server import FakeDiscord
from sandbox.openai_server import StandInLLM
from tests.conftest import make_settings


@dataclass
class World:
    """A guild with a text channel, a voice channel (its text chat allows no threads) and a member."""

    fake: FakeDiscord
    guild: str
    general: str
    voice: str
    ada: dict[str, Any]
    helpers_role: str


@pytest.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        yield fake


@pytest.fixture
def world(fake_discord: FakeDiscord) -> World:
    guild = fake_discord.add_guild("Team", roles=("helpers",))
    return World(
        fake=fake_discord,
        guild=guild,
        general=fake_discord.add_channel(guild, "general"),
        voice=fake_discord.add_channel(guild, "lounge", channel_type=2),
        ada=fake_discord.user_payload("ada"),
        helpers_role=fake_discord.role_id(guild, "helpers"),
    )


@pytest.fixture
def discord_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Extra settings for one test: `@pytest.mark.parametrize("discord_overrides", [{...}], indirect=True)`."""
    return dict(getattr(request, "param", {}))


@pytest.fixture
def settings(
    database_url: str,
    redis_url: str,
    stand_in: StandInLLM,
    tmp_path: Path,
    fake_discord: FakeDiscord,
    discord_overrides: dict[str, Any],
) -> Settings:
    return make_settings(
        database_url,
        redis_url,
        stand_in.base_url,
        tmp_path,
        discord_token=fake_discord.token,
        discord_api_base=fake_discord.api_base,
        discord_gateway_url=fake_discord.gateway_url,
        **discord_overrides,
    )


@dataclass
class Intake:
    """What reached `bot.intake.accept` from the gateway: the real intake, observed on the way through."""

    events: list[IncomingMessage] = field(default_factory=list)

    async def __call__(self, runtime: Runtime, event: IncomingMessage, admitted: Admitted | None) -> Accepted:
        self.events.append(event)
        return await accept(runtime, event, admitted)


@pytest.fixture
def intake() -> Intake:
    return Intake()


@pytest.fixture
async def gateway(
    runtime: Runtime, world: World, intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[DiscordGateway]:
    """`bot serve discord`'s client, connected to the sandbox's gateway and identified."""
    from adapters.discord.app import point_discord_py_at

    # discord.py keeps its endpoints on classes; monkeypatch puts the real ones back after the test.
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
    monkeypatch.setattr(DiscordWebSocket, "DEFAULT_GATEWAY", DiscordWebSocket.DEFAULT_GATEWAY)
    point_discord_py_at(runtime.settings)
    client = DiscordGateway(runtime, intake=intake)
    task = asyncio.create_task(client.start(runtime.settings.discord_token.get_secret_value()))
    ready = asyncio.create_task(world.fake.identified.wait())
    await asyncio.wait([task, ready], timeout=10, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # the client died while connecting: show why
    assert ready.done(), "discord.py never identified to the sandbox gateway"
    # GUILD_CREATE follows READY on the socket; wait until discord.py has the guild in its cache.
    for _ in range(200):
        if client.get_guild(int(world.guild)) is not None:
            break
        await asyncio.sleep(0.01)
    yield client
    await client.close()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def statuses(runtime: Runtime) -> list[tuple[str, str]]:
    m = MESSAGES.c
    async with runtime.autocommit.connect() as conn:
        return [(r, s) for r, s in (await conn.execute(select(m.role, m.status).order_by(m.id))).all()]


async def answered(runtime: Runtime, count: int) -> bool:
    return [s for r, s in await statuses(runtime) if r == "user"] == ["completed"] * count
