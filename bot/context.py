"""Gathering a turn's prompt: system prompt, the user's preferences, and the thread's newest history within a
token budget, read from Postgres (platform history APIs are rate-limited, and ours is the source of truth)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from bot.config import Settings
from bot.ports import ChatMessage, Role
from bot.stores.threads import history as thread_history
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


async def gather_context(conn: AsyncConnection, settings: Settings, turn: Turn, prefs: Preferences | None) -> Prompt:
    """The prompt for answering `turn`: newest history first until the budget is spent, then put back in order.

    Cost stays flat as a thread grows: at most `context_max_messages` rows are read, newest first, through the
    (thread_id, id) index, and the budget is summed from the token counts stored at write time.
    """
    system = system_prompt(settings, prefs)
    spent = count_tokens(system, settings.openai_model) + turn.token_count
    rows = await thread_history(conn, turn.thread_id, before=turn.message_id, limit=settings.context_max_messages)
    history: list[ChatMessage] = []
    truncated = len(rows) == settings.context_max_messages
    for row in rows:
        if spent + row.token_count > settings.context_token_budget:
            truncated = True
            break
        spent += row.token_count
        history.append(ChatMessage(role=_role(row.role), content=row.text))
    history.reverse()
    messages = [ChatMessage(role="system", content=system), *history, ChatMessage(role="user", content=turn.text)]
    return Prompt(messages=messages, tokens=spent, history_included=len(history), history_truncated=truncated)


def _role(value: str) -> Role:
    return "assistant" if value == "assistant" else "user"
