"""Gathering a turn's prompt: system prompt, the user's preferences, and the thread's newest history within a
token budget, read from Postgres (platform history APIs are rate-limited, and ours is the source of truth)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.config import Settings
from bot.models import Message, UserPreference
from bot.ports import ChatMessage, Role
from bot.tokens import count_tokens


@dataclass(frozen=True, slots=True)
class Prompt:
    messages: list[ChatMessage]
    tokens: int
    history_included: int
    history_truncated: bool


def system_prompt(settings: Settings, prefs: UserPreference | None) -> str:
    parts = [settings.system_prompt]
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


async def load_preferences(session: AsyncSession, platform: str, workspace: str, user: str) -> UserPreference | None:
    result = await session.execute(
        select(UserPreference).where(
            col(UserPreference.platform) == platform,
            col(UserPreference.workspace_id) == workspace,
            col(UserPreference.user_id) == user,
        )
    )
    return result.scalars().first()


async def gather_context(
    session: AsyncSession, settings: Settings, turn: Message, prefs: UserPreference | None
) -> Prompt:
    """The prompt for answering `turn`: newest history first until the budget is spent, then put back in order.

    Cost stays flat as a thread grows: at most `context_max_messages` rows are read, newest first, through the
    (thread_id, id) index, and the budget is summed from the token counts stored at write time.
    """
    system = system_prompt(settings, prefs)
    spent = count_tokens(system) + turn.token_count
    rows = (
        await session.execute(
            select(col(Message.role), col(Message.text), col(Message.token_count))
            .where(
                col(Message.thread_id) == turn.thread_id,
                col(Message.id) < turn.id,
                or_(
                    and_(col(Message.role) == "assistant", col(Message.status) == "completed"),
                    and_(col(Message.role) == "user", col(Message.status) != "failed"),
                ),
            )
            .order_by(col(Message.id).desc())
            .limit(settings.context_max_messages)
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
