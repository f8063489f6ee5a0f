"""Things people do to a message, not messages they write: an emoji reaction (REACTION_CHAINS), a message
shortcut (Slack's "Summarize thread", "Ask about this"; Discord's message context menu). Adapters turn each into
a `MessageAction`; here it becomes a durable run, through the same guards as a command.

Each action is keyed by what it is (who did what to which message), not by the platform's delivery: a reaction
delivered twice, or added, removed and added again, starts its chain once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import structlog

from bot.chain_run import ChainRunInput, chain_run
from bot.chains.library import load_library
from bot.errors import InvalidInput
from bot.events import IncomingMessage, Roles, ThreadRef
from bot.guards import CHAIN_RUN as CHAIN_RUN_GUARDS
from bot.guards import Request
from bot.intake import Accepted, accept
from bot.runtime import Runtime
from bot.threads import ensure_thread
from bot.workflows.runs import start_run

log = structlog.get_logger(__name__)

ActionKind = Literal["reaction", "summarize", "ask"]
ASK_ABOUT_LIMIT = 3000  # characters of the message quoted into the question


@dataclass(frozen=True, slots=True)
class MessageAction:
    """`user_id` did `kind` to the message `message_id` (platform id), which lives in `thread`."""

    kind: ActionKind
    thread: ThreadRef
    user_id: str
    message_id: str
    emoji: str = ""  # a reaction's name, without colons ("memo")
    message_text: str = ""  # the message's text, where the platform sends it
    roles: Roles | None = None


def reaction_chain(runtime: Runtime, emoji: str) -> str | None:
    return runtime.settings.reaction_chains.get(emoji.strip(":"))


def action_key(action: MessageAction) -> str:
    t = action.thread
    what = f"reaction:{action.emoji}" if action.kind == "reaction" else action.kind
    return f"action:{t.platform}:{t.workspace_id}:{t.channel_id}:{action.message_id}:{action.user_id}:{what}"


async def take_action(runtime: Runtime, action: MessageAction) -> str | None:
    """Start what the action asks for; what to tell the user (None: nothing, e.g. a reaction nobody configured).
    Raises `UserFacingError` for a refusal (not allowed here, over the rate, unknown chain)."""
    if action.kind == "ask":
        accepted = await _ask_about(runtime, action)
        return None if accepted.duplicate else "Asked; the answer will appear in the thread."
    chain_name = (
        runtime.settings.summarize_chain if action.kind == "summarize" else reaction_chain(runtime, action.emoji)
    )
    if chain_name is None:
        return None
    chain = load_library(runtime.settings).require(chain_name)
    await CHAIN_RUN_GUARDS.admit(runtime, Request(action.thread, action.user_id, "request", roles=action.roles))
    thread_id = await ensure_thread(runtime, action.thread)
    what = f":{action.emoji}:" if action.kind == "reaction" else "the Summarize shortcut"
    started = await start_run(
        runtime,
        chain_run,
        ChainRunInput(chain.name, action.thread, thread_id, action.user_id, ""),
        dedupe_key=action_key(action),
        thread_id=thread_id,
        user_id=action.user_id,
        description=f"{what} on a message: {chain.name}",
    )
    log.info("message action started a chain", action=action.kind, chain=chain.name, run_id=started.run_id)
    return f"Running “{chain.name}”; the result will appear in the thread." if started.created else None


async def _ask_about(runtime: Runtime, action: MessageAction) -> Accepted:
    """A question about the message, asked in its thread as if the user had typed it: a turn like any other."""
    quoted = action.message_text.strip()[:ASK_ABOUT_LIMIT]
    if not quoted:
        raise InvalidInput("That message has no text I can ask about.")
    question = "Explain this message and anything it asks of me:\n\n> " + quoted.replace("\n", "\n> ")
    event = IncomingMessage(
        event_id=action_key(action),
        thread=action.thread,
        user_id=action.user_id,
        text=question,
        roles=action.roles,
    )
    return await accept(runtime, event)
