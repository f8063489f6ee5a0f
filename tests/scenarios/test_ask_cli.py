"""`bot ask` as a user runs it: a separate process, the full queue + worker path, the stand-in over HTTP."""

from __future__ import annotations

import os
import re
from pathlib import Path

from bot.config import Settings, data_home
from sandbox.openai_server import StandInLLM, Step
from tests.conftest import run_bot, subprocess_env


async def test_ask_prints_the_reply_and_the_thread_remembers(
    settings: Settings, runtime: object, stand_in: StandInLLM
) -> None:
    env = subprocess_env(settings)
    stand_in.script(Step(reply="Noted: pineapple."))
    code, out, err = await run_bot("ask", "Remember the word pineapple.", "--thread", "fruit", env=env)
    assert code == 0, err
    assert out.strip() == "Noted: pineapple."
    assert "thread: fruit" in err

    code, out, err = await run_bot("ask", "Which word?", "--thread", "fruit", env=env)
    assert code == 0, err
    assert 'You said: "Which word?"' in out
    assert "I can see 2 earlier messages" in out
    prompt = stand_in.chat_requests()[-1]["messages"]
    assert [m["content"] for m in prompt[1:]] == ["Remember the word pineapple.", "Noted: pineapple.", "Which word?"]


async def test_repeated_event_id_is_answered_once(settings: Settings, runtime: object, stand_in: StandInLLM) -> None:
    env = subprocess_env(settings)
    first = await run_bot("ask", "hello", "--event-id", "E-77", "--thread", "d", env=env)
    second = await run_bot("ask", "hello", "--event-id", "E-77", env=env)  # a new thread name, the same delivery
    assert first[0] == second[0] == 0
    assert first[1] == second[1]
    assert len(stand_in.chat_requests()) == 1
    run = re.search(r"run: (\d+)", first[2])
    assert run is not None, first[2]
    assert f"thread: d  run: {run[1]}" in first[2]
    assert "(a delivery seen before: its first answer)" in second[2]
    assert f"thread: d run: {run[1]} message: " in " ".join(second[2].split()), (
        "the duplicate names the thread and run that hold the message, not a thread that does not exist"
    )
    code, shown, _ = await run_bot("runs", "show", run[1], env=env)
    assert code == 0
    assert "completed" in shown


async def test_refused_message_exits_2_with_the_reason(settings: Settings, runtime: object) -> None:
    code, out, err = await run_bot("ask", "   ", env=subprocess_env(settings))
    assert code == 2
    assert out == ""
    assert "Your message is empty" in err


async def test_failed_turn_exits_1_and_shows_the_error(
    settings: Settings, runtime: object, stand_in: StandInLLM
) -> None:
    env = {**subprocess_env(settings), "LLM_MAX_ATTEMPTS": "2"}
    stand_in.script(Step(status=503), Step(status=503))
    code, out, err = await run_bot("ask", "hello?", env=env)
    assert code == 1, err
    assert "I couldn't answer: the language model kept failing (2 attempts)" in out


async def test_embedded_default_needs_no_accounts_and_stops_what_it_started(tmp_path: Path) -> None:
    """The README's first command: no DATABASE_URL, REDIS_URL or OPENAI_API_KEY."""
    # Relative, as a user's .threadbot is: anchored at the checkout, whatever the working folder (tests run in
    # tmp_path), so it names this test's own folder from there.
    data_dir = Path(os.path.relpath(tmp_path / "d", data_home()))
    env = {k: v for k, v in os.environ.items() if k.upper() not in {n.upper() for n in Settings.model_fields}}
    env["DATA_DIR"] = str(data_dir)
    code, out, err = await run_bot("ask", "hello", "--thread", "demo", env=env)
    assert code == 0, err
    assert out.startswith('[stand-in model] You said: "hello"')
    assert "stand-in model" in err
    assert not (tmp_path / "d" / "postgres" / "postmaster.pid").exists(), "embedded Postgres was left running"
    assert not (tmp_path / "d" / "redis" / "redis.pid").exists(), "embedded Redis was left running"
    assert (tmp_path / "d" / "postgres").is_dir(), "the relative DATA_DIR was this test's folder"

    code, out, err = await run_bot("ask", "again", "--thread", "demo", env=env)
    assert code == 0, err
    assert "I can see 2 earlier messages" in out, "the data survived the restart"


async def test_help_explains_every_command() -> None:
    code, out, _ = await run_bot("--help", env=dict(os.environ))
    assert code == 0
    for command in ("ask", "console", "worker", "db", "services", "settings", "serve"):
        assert f" {command} " in out
    code, out, _ = await run_bot("ask", "--help", env=dict(os.environ))
    assert "Exit status: 0 answered, 1 the turn failed" in " ".join(out.split())
