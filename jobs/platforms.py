"""The platforms a worker can answer on: one outbound client (and file source) per configured platform.

Each adapter contributes one block here. Clients are opened on worker start-up and closed through `stack` on
shutdown; a platform whose settings are empty is simply not registered, and a turn for it fails with a clear
configuration error instead of crashing the worker.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass, field

from redis.asyncio import Redis

from adapters.console.outbound import ConsoleOutbound
from bot.config import Settings
from bot.ports import ChatPlatform, FileSource


@dataclass
class PlatformClients:
    chat: dict[str, ChatPlatform] = field(default_factory=dict)
    files: dict[str, FileSource] = field(default_factory=dict)


async def open_platform_clients(settings: Settings, redis: Redis, stack: AsyncExitStack) -> PlatformClients:
    clients = PlatformClients()
    clients.chat[ConsoleOutbound.name] = ConsoleOutbound(redis)
    # Slack: registered here when SLACK_BOT_TOKEN (or an OAuth installation store) is configured.
    if settings.discord_token.get_secret_value():
        from adapters.discord.files import DiscordFiles
        from adapters.discord.outbound import DiscordOutbound
        from adapters.discord.rest import DiscordRest

        rest = await stack.enter_async_context(DiscordRest(settings))
        clients.chat[DiscordOutbound.name] = DiscordOutbound(rest)
        files = await stack.enter_async_context(DiscordFiles(settings))
        clients.files[files.platform] = files
    return clients
