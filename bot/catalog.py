"""The bot's own workflows and slash commands, gathered for the composition roots: the worker runs `WORKFLOWS`,
the adapters route commands through `COMMANDS`. Nothing in the core imports this module, so the engine and the
command registry know no workflow or command themselves."""

from __future__ import annotations

from bot.chain_run import CHAIN, TRANSCRIBE, chain_run, send_transcript
from bot.chat_turn import chat_turn
from bot.commands import ASK, Commands
from bot.followups.commands import FOLLOWUP_COMMAND, REMIND
from bot.followups.workflows import followup, recurring_reminder, reminder
from bot.media.workflow import media_turn
from bot.workflows.registry import Workflows

WORKFLOWS = Workflows(chat_turn, media_turn, chain_run, send_transcript, reminder, recurring_reminder, followup)
COMMANDS = Commands(ASK, CHAIN, TRANSCRIBE, REMIND, FOLLOWUP_COMMAND)
