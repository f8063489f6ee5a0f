"""Slash commands, platform-neutral: a registry of `Command`s (`/ask`, `/chain`, `/transcribe`, `/remind`,
`/followup`; the bot's are gathered in `bot.catalog`) that any adapter routes a `SlashCommand` through.

An adapter acks the platform within its deadline, builds a `SlashCommand` whose `thread` is where results
should go (for Slack a thread it opened for the command, for Discord the channel or thread), and shows the
returned `CommandReply` to the invoking user only (Slack ephemeral, Discord ephemeral follow-up). Slow work
never happens here: commands are validated, persisted and queued like messages.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import structlog

from bot.errors import UserFacingError
from bot.events import IncomingMessage, SlashCommand
from bot.guards import COMMAND, command_request
from bot.intake import accept
from bot.runtime import Runtime

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class CommandReply:
    """What the invoking user sees right away (ephemeral). Results arrive later in `SlashCommand.thread`."""

    text: str
    accepted: bool = True


Handler = Callable[[Runtime, SlashCommand], Awaitable[CommandReply]]


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    summary: str  # one sentence: Discord's description, the start of the help
    usage: str  # how to type it
    handler: Handler

    @property
    def help(self) -> str:
        return f"{self.summary} Usage: {self.usage}"


def normalise_name(command: str) -> str:
    return command.strip().lstrip("/").lower()


class Commands:
    """The commands an adapter offers, by name, in the order they are listed to users."""

    def __init__(self, *commands: Command) -> None:
        self._by_name = {command.name: command for command in commands}
        if len(self._by_name) != len(commands):
            raise ValueError("two commands share a name")

    def __getitem__(self, name: str) -> Command:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    async def handle(self, runtime: Runtime, command: SlashCommand) -> CommandReply:
        """Run the command; an unknown one is named, a refusal comes back as its user-facing text."""
        name = normalise_name(command.command)
        found = self._by_name.get(name)
        if found is None:
            known = ", ".join(f"/{known}" for known in self._by_name)
            return CommandReply(f"I don't know /{name}. I know {known}.", accepted=False)
        try:
            await COMMAND.admit(runtime, command_request(command))
            return await found.handler(runtime, command)
        except UserFacingError as exc:
            return CommandReply(exc.user_message, accepted=False)


async def ask(runtime: Runtime, command: SlashCommand) -> CommandReply:
    if not command.text.strip():
        return CommandReply(ASK.help, accepted=False)
    accepted = await accept(runtime, ask_message(command))
    log.info("command accepted", command="ask", message_id=accepted.message_id, duplicate=accepted.duplicate)
    return CommandReply(ASKED)


ASKED = "On it; the answer will appear in the thread."


def ask_message(command: SlashCommand) -> IncomingMessage:
    """`/ask QUESTION` is a message like any other, through the message guards."""
    return IncomingMessage(
        event_id=command.event_id,
        thread=command.thread,
        user_id=command.user_id,
        text=command.text,
        roles=command.roles,
    )


ASK = Command("ask", "Ask me anything; I answer in a thread.", "/ask QUESTION", ask)
