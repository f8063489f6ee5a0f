"""`bot runs` as an operator uses it, against the test's Postgres and Redis."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path

from typer.testing import CliRunner

from bot.config import Settings
from bot.workflows.runs import start_run
from cli.main import app
from jobs.queue import open_runtime
from tests.conftest import make_settings, subprocess_env


def test_list_show_cancel_and_retry_a_run(database_url: str, redis_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, redis_url, "http://127.0.0.1:9", tmp_path)
    run_id = asyncio.run(_start(settings))
    runner = CliRunner()
    env = subprocess_env(settings)

    listed = runner.invoke(app, ["runs", "list", "--workflow", "test.cli"], env=env)
    assert listed.exit_code == 0, listed.output
    assert str(run_id) in listed.output
    assert "pending" in listed.output

    shown = runner.invoke(app, ["runs", "show", str(run_id)], env=env)
    assert shown.exit_code == 0, shown.output
    assert f"run {run_id} test.cli: pending" in shown.output
    assert '"note": "operator view"' in shown.output

    assert runner.invoke(app, ["runs", "retry", str(run_id)], env=env).exit_code == 2, "a pending run is not retried"
    cancelled = runner.invoke(app, ["runs", "cancel", str(run_id)], env=env)
    assert cancelled.exit_code == 0, cancelled.output
    assert f"Run {run_id} cancelled." in cancelled.output
    again = runner.invoke(app, ["runs", "cancel", str(run_id)], env=env)
    assert again.exit_code == 2
    assert "already finished" in again.output

    retried = runner.invoke(app, ["runs", "retry", str(run_id)], env=env)
    assert retried.exit_code == 0, retried.output
    shown = runner.invoke(app, ["runs", "show", str(run_id)], env=env)
    assert f"run {run_id} test.cli: pending" in shown.output

    missing = runner.invoke(app, ["runs", "show", "999999999"], env=env)
    assert missing.exit_code == 2
    assert "No run 999999999." in missing.output

    listed_json = runner.invoke(app, ["runs", "list", "--workflow", "test.cli", "--json"], env=env)
    assert listed_json.exit_code == 0, listed_json.output
    [item] = json.loads(listed_json.output)
    assert (item["id"], item["status"], item["description"]) == (run_id, "pending", "cli test")
    datetime.fromisoformat(item["created_at"])  # times are ISO 8601
    shown_json = runner.invoke(app, ["runs", "show", str(run_id), "--json"], env=env)
    detail = json.loads(shown_json.output)
    assert detail["run"]["id"] == run_id
    assert detail["input"] == {"note": "operator view"}
    assert isinstance(detail["steps"], list)


async def _start(settings: Settings) -> int:
    async with open_runtime(settings) as runtime:
        started = await start_run(runtime, "test.cli", {"note": "operator view"}, description="cli test")
        return started.run_id
