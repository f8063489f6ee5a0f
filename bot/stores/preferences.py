"""User preferences: one row per user of a workspace, with what they told the bot about themselves."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.context import Preferences
from bot.models import USER_PREFERENCES, UserPreference
from bot.runtime import Runtime

p = USER_PREFERENCES.c

# The columns a `Preferences` is made of, for statements that load them along with something else.
PREFERENCE_COLUMNS = (p.display_name, p.timezone, p.language, p.instructions)

# Built once; run with parameters.
_LOAD = select(*PREFERENCE_COLUMNS).where(
    p.platform == bindparam("platform"), p.workspace_id == bindparam("workspace"), p.user_id == bindparam("user")
)


async def load_preferences(conn: AsyncConnection, platform: str, workspace: str, user: str) -> Preferences | None:
    row = (await conn.execute(_LOAD, {"platform": platform, "workspace": workspace, "user": user})).first()
    return None if row is None else Preferences(row.display_name, row.timezone, row.language, row.instructions)


async def save_preferences(runtime: Runtime, platform: str, workspace: str, user: str, values: dict[str, str]) -> None:
    """Set the given columns (and only those) of the user's row, creating it if needed."""
    async with runtime.sessions() as session, session.begin():
        await session.execute(
            insert(UserPreference)
            .values(platform=platform, workspace_id=workspace, user_id=user, **values)
            .on_conflict_do_update(constraint="uq_user_preferences_user", set_={**values, "updated_at": func.now()})
        )


async def load_emails(conn: AsyncConnection, platform: str, workspace: str, users: Sequence[str]) -> dict[str, str]:
    """The email addresses these users set (`/prefs set email=...`), by user; users without one are left out."""
    if not users:
        return {}
    rows = await conn.execute(
        select(p.user_id, p.email).where(
            p.platform == platform, p.workspace_id == workspace, p.user_id.in_(list(users)), p.email != ""
        )
    )
    return {row.user_id: row.email for row in rows}
