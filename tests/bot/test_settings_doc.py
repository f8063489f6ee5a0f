"""The README's settings table and .env.example are generated from Settings; they must be current."""

from __future__ import annotations

from pathlib import Path

from bot.settings_doc import env_example, markdown_table

ROOT = Path(__file__).resolve().parents[2]


def test_readme_lists_every_setting_with_its_default() -> None:
    assert markdown_table() in (ROOT / "README.md").read_text(), "regenerate: uv run python -m bot.settings_doc"


def test_env_example_is_current() -> None:
    assert (ROOT / ".env.example").read_text() == env_example(), "regenerate: uv run python -m bot.settings_doc"
