"""`bot console`: an interactive thread at the terminal, through the same intake and queue as every platform."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import shlex
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from pathlib import Path

from redis.exceptions import RedisError

from adapters.console.app import ConsoleSession, entry_text, terminal_width, uploads_dir
from adapters.console.files import file_ref
from adapters.console.inbound import WORKSPACE, console_thread, new_thread_name
from adapters.console.outbound import PLATFORM, as_text, stream_key
from bot.catalog import COMMANDS
from bot.config import Settings
from bot.datadir import make_private_dirs, write_private
from bot.errors import UserFacingError
from bot.events import FileRef, SlashCommand
from bot.logs import write_stdout
from bot.preferences import USAGE, describe_preferences, parse_assignments, set_preferences
from bot.runtime import Runtime

HELP = """Commands:
  /new           start a new thread
  /thread NAME   switch to (or create) thread NAME
  /prefs         show your preferences; /prefs set name=Ada tz=Europe/Paris lang=French note='be brief'
  /remind ...    in 2 hours check the deploy | tomorrow 9am standup | every Monday 09:00 report | list | cancel ID
  /followup ...  in 1 day [note]: nudge this thread with a summary if nobody writes in it by then
  /file PATH [TEXT]  share a file (audio, video, .txt/.md/.vtt/.srt): it is transcribed and digested here
  /chain ...     list | run NAME [text]: run a prompt chain in this thread (media-digest, thread-summary, …)
  /transcribe    post the transcript of the file shared most recently here
  /ask TEXT      the same as typing TEXT
  /help          this list
  /quit          leave (Ctrl-D works too)
Anything else is a message to the bot in the current thread; posts that arrive later (reminders) show up too."""


def _write(text: str) -> None:
    write_stdout(text)  # a log line during a reply starts on its own line


async def _stdin_reader() -> asyncio.StreamReader:
    """stdin as an asyncio stream: unlike input() in a thread, a pending read is cancelled by Ctrl-C."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def run_console(
    settings: Settings,
    ready_runtime: Callable[[Settings], AbstractAsyncContextManager[Runtime]],
    thread: str | None,
    user: str | None,
    worker: Callable[[Settings], AbstractAsyncContextManager[asyncio.Task[None]]] | None,
) -> int:
    """The console session on the runtime `ready_runtime` opens (services started as needed); `worker` runs a worker
    in this process for it (None: rely on `bot worker`)."""
    async with AsyncExitStack() as stack:
        runtime = await stack.enter_async_context(ready_runtime(settings))
        task = await stack.enter_async_context(worker(runtime.settings)) if worker is not None else None
        session = ConsoleSession(runtime, user=user, terminal_width=terminal_width())
        current = thread or new_thread_name()
        prompted = sys.stdin.isatty() and sys.stdout.isatty()
        watcher = ThreadWatcher(runtime, current, prompt_redraws=prompted)
        stack.push_async_callback(watcher.stop)
        watcher.start()
        _write(f"threadbot console. Thread {current}. Type /help for commands, /quit to leave.\n")
        if runtime.settings.uses_stand_in_llm:
            _write(
                "Replies come from the local stand-in model (no OPENAI_API_KEY set); see README.md to plug in a "
                "real one.\n"
            )
        typed_lines = _prompted_lines(history_file(runtime.settings)) if prompted else _lines()
        async for typed in typed_lines:
            line: str | None = typed
            files: tuple[FileRef, ...] = ()
            if typed.startswith("/"):
                if typed.split(" ", 1)[0] in ("/quit", "/exit"):
                    break
                current, line, files = await _slash(runtime, session.user or getpass.getuser(), current, typed)
                watcher.follow(current)
            if line is None:
                continue
            watcher.busy = True
            try:
                result = await session.send(line, current, on_text=_write, worker=task, files=files)
            except UserFacingError as exc:
                _write(f"(not sent) {exc.user_message}\n")
                continue
            except (TimeoutError, RuntimeError) as exc:
                _write(f"(error) {exc}\n")
                return 3
            finally:
                watcher.busy = False
            _write("\n" if result.status == "completed" else "\n(the bot could not answer this one)\n")
    return 0


async def _slash(runtime: Runtime, user: str, current: str, typed: str) -> tuple[str, str | None, tuple[FileRef, ...]]:
    """A line starting with / : returns the thread now current, a message to send (if any) and its files."""
    command, _, arg = typed.partition(" ")
    if command == "/file":
        try:
            path, text = _file_argument(arg)
            return current, text, (file_ref(path),)
        except (ValueError, UserFacingError) as exc:
            _write(f"(not sent) {getattr(exc, 'user_message', exc)} Usage: /file PATH [message]\n")
            return current, None, ()
    if command == "/new":
        current = new_thread_name()
        _write(f"New thread {current}.\n")
    elif command == "/thread" and arg.strip():
        current = arg.strip()
        _write(f"Thread {current}.\n")
    elif command == "/prefs":
        _write(await _prefs(runtime, user, arg) + "\n")
    elif command == "/ask" and arg.strip():
        return current, arg.strip(), ()
    elif command.lower().lstrip("/") in COMMANDS:
        _write(await _command(runtime, user, current, command, arg) + "\n")
    elif command in ("/thread", "/ask"):
        _write(f"Usage: {command} {'NAME' if command == '/thread' else 'TEXT'}\n")
    elif command in ("/help", "/?"):
        _write(HELP + "\n")
    else:
        _write(f"Unknown command {command}. {HELP}\n")
    return current, None, ()


def _file_argument(arg: str) -> tuple[Path, str]:
    """`PATH [message]`, where PATH may be quoted if it has spaces."""
    words = shlex.split(arg)
    if not words:
        raise ValueError("Which file?")
    return Path(words[0]), " ".join(words[1:])


async def _command(runtime: Runtime, user: str, thread: str, command: str, arg: str) -> str:
    """A platform's slash command, typed at the console: same neutral handler as Slack and Discord."""
    reply = await COMMANDS.handle(
        runtime,
        SlashCommand(
            event_id=f"console-{uuid.uuid4().hex}",
            thread=console_thread(thread),
            user_id=user,
            command=command,
            text=arg.strip(),
        ),
    )
    return reply.text


class ThreadWatcher:
    """Prints posts that reach the current thread while nobody is waiting for a reply (a reminder, a nudge).
    While a message is being answered, `ConsoleSession.send` prints everything itself."""

    def __init__(self, runtime: Runtime, thread: str, *, prompt_redraws: bool = False) -> None:
        self._runtime = runtime
        # With prompt_toolkit's prompt, a post is printed above it and the prompt redraws itself; else "> " again.
        self._after = "\n" if prompt_redraws else "\n> "
        self._key = stream_key(console_thread(thread))
        self._cursor: bytes | str = "$"
        self._task: asyncio.Task[None] | None = None
        self.busy = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch())

    def follow(self, thread: str) -> None:
        key = stream_key(console_thread(thread))
        if key != self._key:
            self._key, self._cursor = key, "$"

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self) -> None:
        while True:
            key = self._key
            try:
                batches = await self._runtime.redis.xread({key: self._cursor}, count=100, block=500)
            except (OSError, RedisError):
                await asyncio.sleep(1.0)  # Redis is down; the next turn will say so
                continue
            for _, entries in batches or []:
                for entry_id, fields in entries:
                    if key == self._key:
                        self._cursor = entry_id
                    if not self.busy and as_text(fields[b"op"]) == "post":
                        text = await entry_text(self._runtime.redis, fields, uploads_dir(self._runtime.settings))
                        _write(f"\n{text}{self._after}")


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


def history_file(settings: Settings) -> Path:
    """The console's line history (Up and Down recall earlier lines, across sessions), private like all DATA_DIR."""
    path = make_private_dirs(settings.data_dir) / "console_history"
    if not path.exists():
        write_private(path, b"")
    return path


async def _prompted_lines(history: Path) -> AsyncIterator[str]:
    """Lines typed at a terminal, with line editing and history (prompt_toolkit). Posts that arrive while the
    prompt waits are printed above it. Ctrl-C clears the line, as in a shell; Ctrl-D leaves."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory
    from prompt_toolkit.patch_stdout import patch_stdout

    session: PromptSession[str] = PromptSession(history=FileHistory(str(history)))
    while True:
        try:
            with patch_stdout(raw=True):
                line = await session.prompt_async("> ")
        except EOFError:
            _write("\n")
            return
        except KeyboardInterrupt:
            continue
        if line.strip():
            yield line
