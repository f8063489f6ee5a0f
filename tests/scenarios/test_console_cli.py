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
        sys.executable, "-m", "cli", "console", "--user", "ada", "--thread", "first",
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


async def test_console_reminder_arrives_while_idle_and_can_be_listed(
    settings: Settings, runtime: object, stand_in: StandInLLM
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", "console", "--user", "ada", "--thread", "chores",
        env=subprocess_env(settings),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdin is not None
    assert proc.stdout is not None
    seen = ""

    async def read_until(marker: str) -> None:
        nonlocal seen
        assert proc.stdout is not None
        while marker not in seen:
            chunk = await asyncio.wait_for(proc.stdout.read(4096), 60)
            assert chunk, f"console ended before {marker!r}; output so far: {seen}"
            seen += chunk.decode()

    proc.stdin.write(b"/remind in 2 seconds take out the bins\n/remind list\n")
    await proc.stdin.drain()
    await read_until("Scheduled for you:")
    assert "⏰ I'll remind you " in seen
    await read_until("⏰ Reminder for ada: take out the bins")  # nobody typed anything: it arrives by itself
    await asyncio.sleep(1.0)  # the run is marked completed just after its post
    proc.stdin.write(b"/remind list\n/remind sometime\n/quit\n")
    await proc.stdin.drain()
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    seen += out.decode()
    assert proc.returncode == 0, err.decode()
    assert "Nothing scheduled for you here." in seen, seen
    assert 'I couldn\'t tell when from "sometime"' in seen
    assert seen.count("⏰ Reminder for ada: take out the bins") == 1
