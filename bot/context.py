"""Gathering a turn's prompt: system prompt, the user's preferences, and the thread's newest history within a
token budget, read from Postgres (platform history APIs are rate-limited, and ours is the source of truth)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.config import Settings
from bot.models import MESSAGES, USER_PREFERENCES
from bot.ports import ChatMessage, Role
from bot.tokens import count_tokens


@dataclass(frozen=True, slots=True)
class Turn:
    """The user's message being answered."""

    message_id: int
    thread_id: int
    author_id: str
    text: str
    token_count: int
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class Preferences:
    display_name: str = ""
    timezone: str = "UTC"
    language: str = ""
    instructions: str = ""


@dataclass(frozen=True, slots=True)
class Prompt:
    messages: list[ChatMessage]
    tokens: int
    history_included: int
    history_truncated: bool


FOLLOWUP_HINT = (
    "When the user asks you to check back later, follow up, or nudge the thread if nobody answers, call the "
    "schedule_followup tool."
)


def system_prompt(settings: Settings, prefs: Preferences | None) -> str:
    parts = [settings.system_prompt]
    if settings.assistant_followups:
        parts.append(FOLLOWUP_HINT)
    if prefs is not None:
        if prefs.display_name:
            parts.append(f"The user's name is {prefs.display_name}.")
        if prefs.timezone and prefs.timezone != "UTC":
            parts.append(f"The user's time zone is {prefs.timezone}.")
        if prefs.language:
            parts.append(f"Answer in {prefs.language}.")
        if prefs.instructions:
            parts.append(f"The user asked you to keep in mind: {prefs.instructions}")
    return "\n".join(parts)


PREFERENCE_COLUMNS = (
    USER_PREFERENCES.c.display_name,
    USER_PREFERENCES.c.timezone,
    USER_PREFERENCES.c.language,
    USER_PREFERENCES.c.instructions,
)


async def load_preferences(conn: AsyncConnection, platform: str, workspace: str, user: str) -> Preferences | None:
    row = (
        await conn.execute(
            select(*PREFERENCE_COLUMNS).where(
                USER_PREFERENCES.c.platform == platform,
                USER_PREFERENCES.c.workspace_id == workspace,
                USER_PREFERENCES.c.user_id == user,
            )
        )
    ).first()
    return Preferences(*row) if row is not None else None


async def load_turn(conn: AsyncConnection, message_id: int) -> Turn | None:
    m = MESSAGES.c
    query = select(m.id, m.thread_id, m.author_id, m.text, m.token_count, m.attempts).where(m.id == message_id)
    row = (await conn.execute(query)).first()
    return Turn(*row) if row is not None else None


_m = MESSAGES.c
# Built once; run with parameters (constructing a statement costs more CPU than running it).
_HISTORY = (
    select(_m.role, _m.text, _m.token_count)
    .where(
        _m.thread_id == bindparam("thread_id"),
        _m.id < bindparam("before"),
        or_(
            and_(_m.role == "assistant", _m.status == "completed"),
            and_(_m.role == "user", _m.status != "failed"),
        ),
    )
    .order_by(_m.id.desc())
    .limit(bindparam("limit"))
)


async def gather_context(conn: AsyncConnection, settings: Settings, turn: Turn, prefs: Preferences | None) -> Prompt:
    """The prompt for answering `turn`: newest history first until the budget is spent, then put back in order.

    Cost stays flat as a thread grows: at most `context_max_messages` rows are read, newest first, through the
    (thread_id, id) index, and the budget is summed from the token counts stored at write time.
    """
    system = system_prompt(settings, prefs)
    spent = count_tokens(system) + turn.token_count
    rows = (
        await conn.execute(
            _HISTORY,
            {"thread_id": turn.thread_id, "before": turn.message_id, "limit": settings.context_max_messages},
        )
    ).all()
    history: list[ChatMessage] = []
    truncated = len(rows) == settings.context_max_messages
    for role, text, tokens in rows:
        if spent + tokens > settings.context_token_budget:
            truncated = True
            break
        spent += tokens
        history.append(ChatMessage(role=_role(role), content=text))
    history.reverse()
    messages = [ChatMessage(role="system", content=system), *history, ChatMessage(role="user", content=turn.text)]
    return Prompt(messages=messages, tokens=spent, history_included=len(history), history_truncated=truncated)


def _role(value: str) -> Role:
    return "assistant" if value == "assistant" else "user"
