"""Attachments: refused at once when too big, otherwise carried to intake as FileRefs, and downloaded only from
Discord's hosts, streamed and capped."""

from __future__ import annotations

import asyncio
import json

import pytest

from adapters.discord.files import DiscordFiles
from adapters.discord.gateway import DiscordGateway
from bot.config import Settings
from bot.errors import InvalidInput
from bot.events import FileRef
from bot.runtime import Runtime
from sandbox.openai_server import StandInLLM
from tests.adapters.discord.conftest import Intake, World, answered
from tests.conftest import wait_for

LIMIT = {"max_file_bytes": 1000}
CAPTIONS = b"WEBVTT\n\n00:00:01.000 --> 00:00:03.000\n<v Ada>Ada: we ship on Friday.\n"  # under the limit too


async def collect(files: DiscordFiles, file: FileRef, max_bytes: int) -> bytes:
    return b"".join([chunk async for chunk in files.download(file, max_bytes=max_bytes)])


@pytest.mark.parametrize("discord_overrides", [LIMIT], indirect=True)
async def test_an_attachment_over_the_limit_gets_a_clear_reply_and_nothing_else(
    world: World, gateway: DiscordGateway, intake: Intake
) -> None:
    big = world.fake.add_file("all-hands.mp4", b"\0" * 10, "video/mp4", size=600_000_000)
    await world.fake.user_message(
        world.general, "summarise this", author=world.ada, mention_bot=True, attachments=(big,)
    )
    replies = await wait_for(lambda: world.fake.bot_texts(world.general))
    assert replies == [
        "“all-hands.mp4” is 600 MB; the largest file I accept is 1 KB. Share a shorter or compressed version."
    ]
    assert intake.events == []
    assert world.fake.threads_of(world.general) == []


@pytest.mark.parametrize("discord_overrides", [LIMIT], indirect=True)
async def test_an_allowed_attachment_is_downloaded_from_discord_and_digested_in_the_thread(
    world: World,
    gateway: DiscordGateway,
    worker: asyncio.Task[None],
    intake: Intake,
    runtime: Runtime,
    stand_in: StandInLLM,
    settings: Settings,
) -> None:
    clip = world.fake.add_file("standup.vtt", CAPTIONS, "text/vtt")
    await world.fake.user_message(world.general, "", author=world.ada, mention_bot=True, attachments=(clip,))
    await wait_for(lambda: answered(runtime, 1), timeout_s=30)

    [thread] = world.fake.threads_of(world.general)
    texts = world.fake.bot_texts(thread["id"])
    assert texts[0].startswith("✅ standup.vtt: digest below"), texts
    assert any("**Summary**" in text for text in texts[1:]), texts
    [upload] = [m for m in world.fake.messages[thread["id"]] if m.payload["attachments"]]
    assert upload.payload["attachments"][0]["filename"] == "standup-transcript.txt"
    assert any("Ada: we ship on Friday" in json.dumps(r["messages"]) for r in stand_in.chat_requests())

    (event,) = intake.events
    assert event.text == "Shared “standup.vtt”"
    (file,) = event.files
    assert (file.file_id, file.name, file.mime_type) == (clip["id"], "standup.vtt", "text/vtt")
    assert file.size == len(CAPTIONS)
    async with DiscordFiles(settings) as source:
        assert await collect(source, file, max_bytes=settings.max_file_bytes) == CAPTIONS


async def test_files_come_only_from_discords_hosts(settings: Settings) -> None:
    source = DiscordFiles(settings)
    assert source.is_allowed("https://cdn.discordapp.com/attachments/1/2/a.mp3?ex=1&is=2&hm=3")
    assert source.is_allowed("https://media.discordapp.net/attachments/1/2/a.png")
    assert source.is_allowed(settings.discord_api_base.split("/api")[0] + "/attachments/1/a.mp3")
    assert not source.is_allowed("http://cdn.discordapp.com/attachments/1/2/a.mp3"), "plain HTTP"
    assert not source.is_allowed("https://cdn.discordapp.com.evil.example/a.mp3")
    assert not source.is_allowed("https://example.com/a.mp3")
    with pytest.raises(InvalidInput, match="only download files from Discord itself"):
        await collect(source, FileRef("1", "a.mp3", "audio/mpeg", 10, "https://example.com/a.mp3"), 1000)


async def test_a_file_larger_than_it_claimed_is_cut_off_at_the_limit(world: World, settings: Settings) -> None:
    liar = world.fake.add_file("small.txt", b"x" * 5000, "text/plain", size=10)
    file = FileRef(liar["id"], "small.txt", "text/plain", 10, liar["url"])
    async with DiscordFiles(settings) as source:
        with pytest.raises(InvalidInput, match=r"“small\.txt” is 5 KB; the largest file I accept is 1 KB"):
            await collect(source, file, max_bytes=1000)
        assert await collect(source, file, max_bytes=10_000) == b"x" * 5000
