"""Multi-workspace install: Bolt's OAuth flow keeps installations in Postgres and its one-time states in Redis.

The bot token of each workspace lives in `slack_installations`; the worker's outbound and file source look it up
per workspace through `InstallationTokens`, which caches it briefly so a streamed reply costs no query per edit.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

import structlog
from redis.asyncio import Redis
from slack_sdk.oauth.installation_store import Bot, Installation
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore
from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.errors import ConfigurationError
from bot.models import SLACK_INSTALLATIONS

log = structlog.get_logger(__name__)
i = SLACK_INSTALLATIONS.c

# Kept equal to the manifest's bot scopes (a test checks): what a workspace grants when it installs the app.
BOT_SCOPES = (
    "app_mentions:read",
    "assistant:write",
    "channels:history",
    "channels:read",
    "chat:write",
    "chat:write.public",
    "commands",
    "files:read",
    "files:write",
    "groups:history",
    "im:history",
    "im:read",
    "im:write",
    "mpim:history",
    "reactions:read",
)
INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
_STATE_TTL_S = 600


def authorization_url(api_url: str) -> str:
    """Slack's consent page lives beside its API: https://slack.com/api/ -> https://slack.com/oauth/v2/authorize."""
    parts = urlsplit(api_url)
    return f"{parts.scheme}://{parts.netloc}/oauth/v2/authorize"


class PostgresInstallationStore(AsyncInstallationStore):
    """Bot installations, one row per workspace (or org for an Enterprise-wide install)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._logger = logging.getLogger(__name__)

    @property
    def logger(self) -> logging.Logger:
        return self._logger

    async def async_save(self, installation: Installation) -> None:
        await self.async_save_bot(installation.to_bot(), installer_user_id=installation.user_id or "")

    async def async_save_bot(self, bot: Bot, installer_user_id: str = "") -> None:
        values: dict[str, Any] = {
            "enterprise_id": bot.enterprise_id or "",
            "team_id": "" if bot.is_enterprise_install else bot.team_id or "",
            "is_enterprise_install": bool(bot.is_enterprise_install),
            "app_id": bot.app_id or "",
            "team_name": bot.team_name or "",
            "bot_token": bot.bot_token,
            "bot_id": bot.bot_id or "",
            "bot_user_id": bot.bot_user_id or "",
            "bot_scopes": ",".join(bot.bot_scopes or ()),
            "installer_user_id": installer_user_id,
        }
        statement = (
            insert(SLACK_INSTALLATIONS)
            .values(**values)
            .on_conflict_do_update(
                constraint="uq_slack_installations_org_team",
                set_={k: v for k, v in values.items() if k not in ("enterprise_id", "team_id")}
                | {"updated_at": func.now()},
            )
        )
        async with self._engine.begin() as conn:
            await conn.execute(statement)
        log.info("slack installation saved", team=values["team_id"], enterprise=values["enterprise_id"])

    async def async_find_bot(
        self, *, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False
    ) -> Bot | None:
        row = await self._find(enterprise_id, None if is_enterprise_install else team_id)
        return None if row is None else Bot(**_fields(row))

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        row = await self._find(enterprise_id, None if is_enterprise_install else team_id)
        return None if row is None else Installation(**_fields(row), user_id=row.installer_user_id)

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                delete(SLACK_INSTALLATIONS).where(
                    i.enterprise_id == (enterprise_id or ""), i.team_id == (team_id or "")
                )
            )
        log.info("slack installation deleted", team=team_id, enterprise=enterprise_id)

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        # Bot-only installs: the installation is the bot row.
        await self.async_delete_bot(enterprise_id=enterprise_id, team_id=team_id)

    async def _find(self, enterprise_id: str | None, team_id: str | None) -> Any:
        query = select(SLACK_INSTALLATIONS).where(
            i.enterprise_id == (enterprise_id or ""), i.team_id == (team_id or "")
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None and enterprise_id is None and team_id:
            # The worker knows only the workspace: a workspace of an Enterprise Grid org is stored with its org's id.
            query = select(SLACK_INSTALLATIONS).where(i.team_id == team_id).order_by(i.id.desc()).limit(1)
            async with self._engine.connect() as conn:
                row = (await conn.execute(query)).first()
        if row is None and enterprise_id and team_id:
            # A workspace of an org that installed the app org-wide.
            query = select(SLACK_INSTALLATIONS).where(i.enterprise_id == enterprise_id, i.is_enterprise_install)
            async with self._engine.connect() as conn:
                row = (await conn.execute(query)).first()
        return row


def _fields(row: Any) -> dict[str, Any]:
    """What slack_sdk's `Bot` and `Installation` both take from an installation row ("" stored, None given)."""
    return {
        "app_id": row.app_id or None,
        "enterprise_id": row.enterprise_id or None,
        "team_id": row.team_id or None,
        "team_name": row.team_name or None,
        "bot_token": row.bot_token,
        "bot_id": row.bot_id,
        "bot_user_id": row.bot_user_id,
        "bot_scopes": row.bot_scopes,
        "is_enterprise_install": row.is_enterprise_install,
        "installed_at": row.installed_at.timestamp(),
    }


class RedisOAuthStateStore(AsyncOAuthStateStore):
    """One-time OAuth `state` values in Redis: shared by every adapter process, gone after use or ten minutes."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._logger = logging.getLogger(__name__)

    @property
    def logger(self) -> logging.Logger:
        return self._logger

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        state = secrets.token_urlsafe(24)
        await self._redis.set(f"slack:oauth-state:{state}", 1, ex=_STATE_TTL_S)
        return state

    async def async_consume(self, state: str) -> bool:
        return bool(await self._redis.delete(f"slack:oauth-state:{state}"))


class InstallationTokens:
    """workspace id -> bot token, from the installation store, cached for a minute."""

    def __init__(self, store: PostgresInstallationStore, ttl_s: float = 60.0) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._cache: dict[str, tuple[float, str]] = {}

    async def __call__(self, workspace_id: str) -> str:
        cached = self._cache.get(workspace_id)
        if cached is not None and time.monotonic() - cached[0] < self._ttl_s:
            return cached[1]
        bot = await self._store.async_find_bot(enterprise_id=None, team_id=workspace_id)
        if bot is None:
            raise ConfigurationError(f"the Slack app is not installed in workspace {workspace_id}")
        self._cache[workspace_id] = (time.monotonic(), bot.bot_token or "")
        return bot.bot_token or ""
