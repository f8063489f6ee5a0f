"""The command line's own behaviour, in-process (typer's runner): what an operator reads."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cli.main import app


def test_settings_masks_secrets_and_url_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-top-secret")
    monkeypatch.setenv("DATABASE_URL", "postgresql://bot:hunter2@db:5432/bot")
    monkeypatch.setenv("ALLOWED_USERS", "U1,U2")
    result = CliRunner().invoke(app, ["settings"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "sk-top-secret" not in result.output
    assert "hunter2" not in result.output
    assert "postgresql://bot:***@db:5432/bot" in result.output
    assert "U1, U2" in result.output


def test_unknown_bench_scenario_is_refused_with_the_known_ones() -> None:
    result = CliRunner().invoke(app, ["bench", "nonsense"])
    assert result.exit_code == 2
    assert "Unknown scenario nonsense" in result.output
    assert "floor" in result.output


def test_serve_slack_names_the_settings_it_is_missing() -> None:
    http = CliRunner().invoke(app, ["serve", "slack", "--http"])
    assert http.exit_code == 3
    assert "Slack HTTP mode needs SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET." in http.output
    socket = CliRunner().invoke(app, ["serve", "slack", "--socket"], env={"SLACK_BOT_TOKEN": "xoxb-1"})
    assert socket.exit_code == 3
    assert "Slack Socket Mode needs SLACK_APP_TOKEN." in socket.output
