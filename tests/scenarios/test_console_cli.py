"""`bot console` driven like a person at a terminal: lines on stdin, replies on stdout."""

from __future__ import annotations

import asyncio
import sys

from bot.config import Settings
from sandbox.openai_server import StandInLLM
from tests.conftest import subprocess_env


async def test_console_session_with_threads_and_preferences(
    settings: Settings, runtime: object, stand_in: StandInLLM
) -> None:
    lines = [
        "/help",
        "/prefs set name=Ada tz=Europe/Paris note='answer in one line'",
        "/prefs set tz=Mars/Olympus",
        "/prefs",
        "Remember the word pineapple.",
        "Which word was it?",
        "/new",
        "hello in a new thread",
        "/quit",
    ]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "console", "--user", "ada", "--thread", "first",
        env=subprocess_env(settings),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate("\n".join(lines).encode() + b"\n"), 90)
    text = out.decode()
    assert proc.returncode == 0, err.decode()
    assert "Thread first." in text
    assert "/new           start a new thread" in text
    assert "'Mars/Olympus' isn't a time zone I know" in text
    assert "name: Ada; time zone: Europe/Paris; language: any; note: answer in one line" in text
    assert 'You said: "Which word was it?". I can see 2 earlier messages' in text
    assert 'You said: "hello in a new thread". I can see 0 earlier messages' in text

    prompts = stand_in.chat_requests()
    assert len(prompts) == 3
    system = prompts[0]["messages"][0]["content"]
    assert "The user's name is Ada." in system
    assert "Europe/Paris" in system
    assert "answer in one line" in system
