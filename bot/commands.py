"""Slash commands, platform-neutral: `/ask`, `/chain`, `/transcribe`, `/remind` from any adapter land here.

An adapter acks the platform within its deadline, builds a `SlashCommand` whose `thread` is where results
should go (for Slack a thread it opened for the command, for Discord the channel or thread), and shows the
returned `CommandReply` to the invoking user only (Slack ephemeral, Discord ephemeral follow-up). Slow work
never happens here: commands are validated, persisted and queued like messages.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from bot.errors import UserFacingError
from bot.events import IncomingMessage, SlashCommand
from bot.intake import accept
from bot.runtime import Runtime

log = structlog.get_logger(__name__)

COMMANDS: dict[str, str] = {
    "ask": "Ask me anything; I answer in a thread. Usage: /ask QUESTION",
    "chain": "Run a prompt chain. Usage: /chain list | /chain run NAME [text]",
    "transcribe": "Post the transcript of the file shared most recently here. Usage: /transcribe",
    "remind": "Schedule a reminder. Usage: /remind in 2 hours check the deploy | every Monday 09:00 … | list | cancel",
    "followup": "Nudge this thread with a summary if it goes quiet. Usage: /followup in 1 day [note]",
}


@dataclass(frozen=True, slots=True)
class CommandReply:
    """What the invoking user sees right away (ephemeral). Results arrive later in `SlashCommand.thread`."""

    text: str
    accepted: bool = True


def normalise_name(command: str) -> str:
    return command.strip().lstrip("/").lower()


async def handle_command(runtime: Runtime, command: SlashCommand) -> CommandReply:
    name = normalise_name(command.command)
    handler = _HANDLERS.get(name)
    if handler is None:
        known = ", ".join(f"/{known}" for known in COMMANDS)
        return CommandReply(f"I don't know /{name}. I know {known}.", accepted=False)
    try:
        return await handler(runtime, command)
    except UserFacingError as exc:
        return CommandReply(exc.user_message, accepted=False)


async def _ask(runtime: Runtime, command: SlashCommand) -> CommandReply:
    if not command.text.strip():
        return CommandReply(COMMANDS["ask"], accepted=False)
    accepted = await accept(
        runtime,
        IncomingMessage(event_id=command.event_id, thread=command.thread, user_id=command.user_id, text=command.text),
    )
    log.info("command accepted", command="ask", message_id=accepted.message_id, duplicate=accepted.duplicate)
    return CommandReply("On it; the answer will appear in the thread.")


async def _chain(runtime: Runtime, command: SlashCommand) -> CommandReply:
    from bot.chain_run import chain_command  # imported late: it builds on this module's CommandReply

    return await chain_command(runtime, command)


async def _transcribe(runtime: Runtime, command: SlashCommand) -> CommandReply:
    from bot.chain_run import transcribe_command

    return await transcribe_command(runtime, command)


async def _remind(runtime: Runtime, command: SlashCommand) -> CommandReply:
    from bot.followups.commands import remind  # imported late: it builds on this module's CommandReply

    return await remind(runtime, command)


async def _followup(runtime: Runtime, command: SlashCommand) -> CommandReply:
    from bot.followups.commands import followup

    return await followup(runtime, command)


_HANDLERS = {
    "ask": _ask,
    "chain": _chain,
    "transcribe": _transcribe,
    "remind": _remind,
    "followup": _followup,
}
