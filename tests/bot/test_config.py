from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Settings, data_home


def test_lists_come_from_comma_separated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_USERS", " U1, U2 ,,U3")
    monkeypatch.setenv("ALLOWED_CHANNELS", "")
    settings = Settings(_env_file=None)
    assert settings.allowed_users == frozenset({"U1", "U2", "U3"})
    assert settings.allowed_channels == frozenset()


def test_stand_in_is_used_only_without_key_and_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).uses_stand_in_llm
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:11434/v1")
    assert not Settings(_env_file=None).uses_stand_in_llm


def test_secrets_never_show_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-very-secret")
    settings = Settings(_env_file=None)
    assert "very-secret" not in repr(settings)
    assert "very-secret" not in str(settings.model_dump())


def test_a_relative_data_dir_is_one_place_whatever_folder_a_command_runs_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATA_DIR", raising=False)
    seen = []
    for folder in (tmp_path / "one", tmp_path / "two"):
        folder.mkdir()
        monkeypatch.chdir(folder)
        seen.append(Settings(_env_file=None).data_dir)
    assert seen[0] == seen[1] == data_home() / ".threadbot"
    assert seen[0].is_absolute()
    assert (data_home() / "pyproject.toml").exists(), "run from a checkout: anchored at the checkout"
    assert Settings(_env_file=None, data_dir=tmp_path / "mine").data_dir == tmp_path / "mine", "absolute kept"
