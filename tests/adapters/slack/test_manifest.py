"""The manifest a new user pastes into Slack declares everything the adapter listens to and calls."""

from __future__ import annotations

from pathlib import Path

import yaml

import adapters.slack
from adapters.slack.app import COMMAND_PATTERN
from bot.catalog import COMMANDS

MANIFEST = Path(adapters.slack.__file__).parent / "manifest.yml"


def test_manifest_declares_every_command_event_and_scope() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    commands = {c["command"] for c in manifest["features"]["slash_commands"]}
    assert {f"/{name}" for name in COMMANDS} <= commands
    assert all(COMMAND_PATTERN.match(command) for command in commands)
    assert all(c["url"].endswith("/slack/events") for c in manifest["features"]["slash_commands"])
    events = set(manifest["settings"]["event_subscriptions"]["bot_events"])
    assert {"app_mention", "message.im", "message.channels", "assistant_thread_started"} <= events
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    needed = {
        "app_mentions:read",
        "chat:write",
        "commands",
        "files:read",
        "files:write",
        "im:history",
        "assistant:write",
    }
    assert needed <= scopes
    assert manifest["settings"]["event_subscriptions"]["request_url"].endswith("/slack/events")
