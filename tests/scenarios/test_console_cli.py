"""`bot console` driven like a person at a terminal: lines on stdin, replies on stdout."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pty
import re
import select
import struct
import sys
import termios
from collections.abc import Callable

from bot.config import Settings
from sandbox.openai_server import StandInLLM, Step
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


class Terminal:
    """`bot console` on a pseudo-terminal, as a person runs it: keys in, the screen's bytes out."""

    def __init__(self, proc: asyncio.subprocess.Process, master: int) -> None:
        self.proc, self.master, self.seen = proc, master, ""

    @classmethod
    async def start(cls, settings: Settings, *args: str) -> Terminal:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
        env = {**subprocess_env(settings), "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cli", "console", *args, env=env, stdin=slave, stdout=slave, stderr=slave
        )
        os.close(slave)
        return cls(proc, master)

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    async def until(self, shown: Callable[[str], bool], what: str, timeout_s: float = 30) -> str:
        """Read the screen until `shown(screen)` holds; `what` names it for the failure."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not shown(self.plain()):
            if loop.time() > deadline:
                raise AssertionError(f"never shown: {what}; the screen had:\n{self.plain()[-2000:]}")
            ready, _, _ = await asyncio.to_thread(select.select, [self.master], [], [], 0.2)
            if ready:
                try:
                    self.seen += os.read(self.master, 65536).decode("utf-8", errors="replace")
                except OSError:  # the console exited and closed its end
                    break
        return self.plain()

    async def wait_for(self, text: str) -> str:
        return await self.until(lambda screen: text in screen, repr(text))

    async def wait_for_prompt(self) -> None:
        """Until the prompt is back with nothing after it: keys typed before it are echoed by the terminal, not
        read by the console's line editor."""
        await self.until(lambda screen: screen.rstrip(" ").endswith(">"), "the prompt")

    async def wait_for_prompt_with(self, line: str, timeout_s: float = 30) -> None:
        mark = len(self.plain())
        holding = f"the prompt holding {line!r}"
        await self.until(lambda screen: screen[mark:].rstrip(" ").endswith(line), holding, timeout_s)

    def plain(self) -> str:
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]|[\r\x08]", "", self.seen)

    async def close(self) -> int:
        """Ctrl-D at the prompt, reading the screen until the console exits (a full terminal would block it)."""
        with contextlib.suppress(AssertionError):
            await self.wait_for_prompt()
        self.type("\x04")
        await self.until(lambda _: self.proc.returncode is not None, "the console's exit")
        os.close(self.master)
        return await self.proc.wait()


async def test_at_a_terminal_lines_are_edited_recalled_and_replies_rendered(
    settings: Settings, runtime: object, stand_in: StandInLLM
) -> None:
    terminal = await Terminal.start(settings, "--user", "ada", "--thread", "tty")
    try:
        await terminal.wait_for("Type /help for commands")
        await terminal.wait_for_prompt()

        stand_in.script(Step(reply="Use **bold** and `code` here."), Step(reply="Second answer."))
        terminal.type("hellp\x7fo there\r")  # a typo, fixed with Backspace before Enter
        screen = await terminal.wait_for("Use bold and code here.")
        assert "**bold**" not in screen.split("hello there", 1)[1], "the reply is drawn as rendered Markdown"
        await terminal.wait_for_prompt()

        # Up recalls the last line; Enter sends it again. The line editor reads its history file in the background
        # when a prompt opens, and an Up before that is done finds nothing: press again (the one line is also the
        # oldest, so an extra Up changes nothing).
        for _ in range(10):
            terminal.type("\x1b[A")
            with contextlib.suppress(AssertionError):
                await terminal.wait_for_prompt_with("hello there", timeout_s=1)
                break
        terminal.type("\r")
        await terminal.wait_for("Second answer.")
        sent = [request["messages"][-1]["content"] for request in stand_in.chat_requests()]
        assert sent == ["hello there", "hello there"]
        await terminal.wait_for_prompt()

        terminal.type("/frobnicate\r")
        await terminal.wait_for("Unknown command /frobnicate.")
    finally:
        code = await terminal.close()
    assert code == 0
    assert "hello there" in (settings.data_dir / "console_history").read_text()
    assert (settings.data_dir / "console_history").stat().st_mode & 0o777 == 0o600
