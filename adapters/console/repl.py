"""`bot console`: an interactive thread at the terminal, through the same intake and queue as every platform."""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack

from adapters.console.app import ConsoleSession, in_process_worker
from adapters.console.inbound import WORKSPACE, new_thread_name
from adapters.console.outbound import PLATFORM
from bot.config import Settings
from bot.errors import UserFacingError
from bot.preferences import USAGE, describe_preferences, parse_assignments, set_preferences
from bot.runtime import Runtime, open_runtime
from bot.services import Services

HELP = """Commands:
  /new           start a new thread
  /thread NAME   switch to (or create) thread NAME
  /prefs         show your preferences; /prefs set name=Ada tz=Europe/Paris lang=French note='be brief'
  /help          this list
  /quit          leave (Ctrl-D works too)
Anything else is a message to the bot in the current thread."""


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


async def _stdin_reader() -> asyncio.StreamReader:
    """stdin as an asyncio stream: unlike input() in a thread, a pending read is cancelled by Ctrl-C."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def run_console(
    settings: Settings,
    ready_services: Callable[[Settings], AbstractAsyncContextManager[Services]],
    thread: str | None,
    user: str | None,
    worker: bool,
) -> int:
    async with AsyncExitStack() as stack:
        services = await stack.enter_async_context(ready_services(settings))
        runtime = await stack.enter_async_context(open_runtime(services.settings))
        task = await stack.enter_async_context(in_process_worker(services.settings)) if worker else None
        session = ConsoleSession(runtime, user=user)
        current = thread or new_thread_name()
        _write(f"threadbot console. Thread {current}. Type /help for commands, /quit to leave.\n")
        if services.settings.uses_stand_in_llm:
            _write(
                "Replies come from the local stand-in model (no OPENAI_API_KEY set); see README.md to plug in a "
                "real one.\n"
            )
        async for line in _lines():
            if line.startswith("/"):
                command, _, arg = line.partition(" ")
                if command in ("/quit", "/exit"):
                    break
                if command == "/new":
                    current = new_thread_name()
                    _write(f"New thread {current}.\n")
                elif command == "/thread" and arg.strip():
                    current = arg.strip()
                    _write(f"Thread {current}.\n")
                elif command == "/prefs":
                    _write(await _prefs(runtime, session.user or getpass.getuser(), arg) + "\n")
                else:
                    _write(HELP + "\n")
                continue
            try:
                result = await session.send(line, current, on_text=_write, worker=task)
            except UserFacingError as exc:
                _write(f"(not sent) {exc.user_message}\n")
                continue
            except (TimeoutError, RuntimeError) as exc:
                _write(f"(error) {exc}\n")
                return 3
            _write("\n" if result.status == "completed" else "\n(the bot could not answer this one)\n")
    return 0


async def _prefs(runtime: Runtime, user: str, arg: str) -> str:
    action, _, rest = arg.strip().partition(" ")
    try:
        if action == "set":
            await set_preferences(runtime, PLATFORM, WORKSPACE, user, parse_assignments(rest))
        elif action:
            return USAGE
    except UserFacingError as exc:
        return exc.user_message
    return await describe_preferences(runtime, PLATFORM, WORKSPACE, user)


async def _lines() -> AsyncIterator[str]:
    reader = await _stdin_reader()
    while True:
        _write("> ")
        raw = await reader.readline()
        if not raw:
            _write("\n")
            return
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if line.strip():
            yield line
