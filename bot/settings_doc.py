"""The settings reference (README table and .env.example), generated from `Settings` so it cannot drift."""

from __future__ import annotations

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
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(env_example() if "--env" in sys.argv else markdown_table() + "\n")
