"""The settings reference (README table and .env.example), generated from `Settings` so it cannot drift."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import SecretStr

from bot.config import Settings


def _default(name: str) -> str:
    value = Settings.model_fields[name].default
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, frozenset):
        return ",".join(sorted(value))
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return json.dumps(value)  # what the setting reads from the environment
    return str(value)


def markdown_table() -> str:
    lines = ["| setting | default | what it does |", "| --- | --- | --- |"]
    for name, info in Settings.model_fields.items():
        default = _default(name)
        shown = (
            f"`{default}`" if default and len(default) <= 40 else ("(empty)" if not default else "(see .env.example)")
        )
        lines.append(f"| `{name.upper()}` | {shown} | {info.description or ''} |")
    return "\n".join(lines)


def env_example() -> str:
    lines = ["# Every setting with its default. Copy to .env and change what you need; empty means the default."]
    for name, info in Settings.model_fields.items():
        lines.append(f"\n# {info.description or ''}")
        default = _default(name).replace("\n", " ")
        lines.append(f"{name.upper()}={default}" if default else f"# {name.upper()}=")
    lines.append(COMPOSE_ONLY)
    return "\n".join(lines) + "\n"


# Read by docker compose (it fills docker-compose.yml from .env), not by the bot: required there, with no default.
COMPOSE_ONLY = """
# --- docker-compose.yml only: compose refuses to start until each is set (URL-safe: openssl rand -hex 24) ---
# Redis's password (arq's jobs are pickles: whoever writes to the queue runs code as the bot); also in REDIS_URL.
# REDIS_PASSWORD=
# The Postgres user threadbot's password; also in DATABASE_URL.
# POSTGRES_PASSWORD=
# MinIO's root password, which the bot uses as S3_SECRET_ACCESS_KEY.
# MINIO_ROOT_PASSWORD="""


def write_docs(root: Path) -> None:
    """Rewrite .env.example and the README's table between its settings markers."""
    (root / ".env.example").write_text(env_example())
    readme = root / "README.md"
    text = readme.read_text()
    start, end = text.index(START) + len(START), text.index(END)
    readme.write_text(text[:start] + "\n" + markdown_table() + "\n" + text[end:])


START, END = "<!-- settings:start -->", "<!-- settings:end -->"

if __name__ == "__main__":
    write_docs(Path(__file__).resolve().parents[1])
