"""The platforms a worker can answer on: one outbound client (and file source) per configured platform.

Each adapter contributes one block here. Clients are opened on worker start-up and closed through `stack` on
shutdown; a platform whose settings are empty is simply not registered, and a turn for it fails with a clear
configuration error instead of crashing the worker.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import aiohttp
from redis.asyncio import Redis

from adapters.console.files import ConsoleFileSource
from adapters.console.outbound import ConsoleOutbound
from adapters.web.files import WebFileSource
from adapters.web.outbound import WebOutbound
from bot.config import Settings
from bot.ports import ChatPlatform, FileSource


@dataclass
class PlatformClients:
    chat: dict[str, ChatPlatform] = field(default_factory=dict)
    files: dict[str, FileSource] = field(default_factory=dict)


async def open_platform_clients(settings: Settings, redis: Redis, stack: AsyncExitStack) -> PlatformClients:
    clients = PlatformClients()
    clients.chat[ConsoleOutbound.name] = ConsoleOutbound(redis)
    clients.files[ConsoleFileSource.platform] = ConsoleFileSource()
    # The web playground, like the console, needs nothing but the Redis every worker has.
    clients.chat[WebOutbound.name] = WebOutbound(redis)
    clients.files[WebFileSource.platform] = WebFileSource()
    slack_token = settings.slack_bot_token.get_secret_value()
    if slack_token or settings.slack_oauth_enabled:
        from adapters.slack.files import SlackFileSource
        from adapters.slack.installations import InstallationTokens, PostgresInstallationStore
        from adapters.slack.outbound import SlackOutbound
        from adapters.slack.webapi import TokenSource, fixed_token, web_client
        from bot.db import INSTALLATION_STORE_POOL, create_engine

        tokens: TokenSource = fixed_token(slack_token)
        if settings.slack_oauth_enabled:
            # Installed workspaces' tokens live in Postgres; a small pool of our own keeps lookups off the turns'.
            engine = create_engine(settings.database_url, pool_size=INSTALLATION_STORE_POOL)
            stack.push_async_callback(engine.dispose)
            tokens = InstallationTokens(PostgresInstallationStore(engine))
        # One HTTP session per worker: connections to Slack are reused across every turn's posts and edits.
        session = aiohttp.ClientSession()
        stack.push_async_callback(session.close)
        client = web_client(None, settings.slack_api_url, session)
        clients.chat[SlackOutbound.name] = SlackOutbound(
            client, tokens, native_streaming=settings.slack_native_streaming
        )
        clients.files[SlackFileSource.platform] = SlackFileSource(tokens, settings.slack_api_url)
    if settings.discord_token.get_secret_value():
        from adapters.discord.files import DiscordFiles
        from adapters.discord.outbound import DiscordOutbound
        from adapters.discord.rest import DiscordRest

        rest = await stack.enter_async_context(DiscordRest(settings))
        clients.chat[DiscordOutbound.name] = DiscordOutbound(rest)
        files = await stack.enter_async_context(DiscordFiles(settings))
        clients.files[files.platform] = files
    return clients
