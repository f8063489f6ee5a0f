"""`bot ask` and `bot console`: the console platform, through the same intake, queue and workers as Slack's."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from bot.config import Settings
from bot.errors import UserFacingError
from bot.logs import configure_logging, write_stdout
from cli.common import (
    EXIT_FAILED_TURN,
    EXIT_INFRA,
    EXIT_REFUSED,
    err,
    load_settings,
    ready_runtime,
    ready_services,
    run_async,
)


def ask(
    text: Annotated[str, typer.Argument(help="The message to send (may be empty with --file).")] = "",
    file: Annotated[
        list[Path] | None,
        typer.Option(
            "--file", "-f", help="Share a file with the message (audio, video, .txt/.md/.vtt/.srt); repeatable."
        ),
    ] = None,
    thread: Annotated[str, typer.Option("--thread", "-t", help="Thread to continue; a new one if omitted.")] = "",
    user: Annotated[str, typer.Option(help="User id to send as (default: your login name).")] = "",
    event_id: Annotated[str, typer.Option(help="Delivery id; repeat one to see deduplication.")] = "",
    worker: Annotated[bool, typer.Option(help="Run a worker in this process (off: rely on `bot worker`).")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the answer.")] = 300.0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show INFO logs on stderr.")] = False,
) -> None:
    """Send one message through the full pipeline (intake -> queue -> worker -> LLM) and print the reply.

    With --file, the file is stored, transcribed and digested by a chain (media-digest unless a chain claims
    the file's type), and the digest is printed; ask follow-up questions with --thread.

    Exit status: 0 answered, 1 the turn failed (the error is printed), 2 the message was refused, 3 a
    service problem or timeout. The thread id and the run id are printed on stderr: continue with --thread, look
    the run up with `bot runs show RUN`.
    """
    from adapters.console.inbound import new_thread_name

    settings = load_settings()
    # -v shows what its help says: INFO (a turn's intake and run lines); quiet otherwise, the reply is the output.
    configure_logging("INFO" if verbose else "WARNING", json=settings.log_json)
    thread_name = thread or new_thread_name()
    code = run_async(
        _ask(settings, text, thread_name, user or None, event_id or None, worker, timeout, tuple(file or ()))
    )
    raise typer.Exit(code)


async def _ask(
    settings: Settings,
    text: str,
    thread: str,
    user: str | None,
    event_id: str | None,
    worker: bool,
    wait_s: float,
    paths: tuple[Path, ...] = (),
) -> int:
    from adapters.console.app import ConsoleSession, terminal_width
    from adapters.console.files import file_ref
    from jobs.queue import open_runtime
    from jobs.worker import in_process_worker

    async with ready_services(settings, counts_tokens=True) as services, open_runtime(services.settings) as runtime:
        if services.settings.uses_stand_in_llm:
            err.print(
                "[dim]Note: replies come from the local stand-in model, not a real LLM (no OPENAI_API_KEY set). "
                "Set OPENAI_API_KEY to use a real one.[/dim]"
            )
        session = ConsoleSession(runtime, user=user, terminal_width=terminal_width())

        show = write_stdout  # a log line during the reply starts on its own line

        async def send(task: asyncio.Task[None] | None) -> int:
            try:
                files = tuple(file_ref(path) for path in paths)
                result = await session.send(
                    text, thread, event_id=event_id, on_text=show, timeout_s=wait_s, worker=task, files=files
                )
            except UserFacingError as exc:
                err.print(f"[yellow]Not sent:[/yellow] {escape(exc.user_message)}")
                return EXIT_REFUSED
            except (TimeoutError, RuntimeError) as exc:
                err.print(f"[red]{escape(str(exc))}[/red]")
                return EXIT_INFRA
            write_stdout("\n")
            again = " (a delivery seen before: its first answer)" if result.duplicate else ""
            err.print(f"[dim]thread: {result.thread}  run: {result.run_id}  message: {result.message_id}{again}[/dim]")
            return 0 if result.status == "completed" else EXIT_FAILED_TURN

        if not worker:
            return await send(None)
        async with in_process_worker(services.settings) as task:
            return await send(task)


def console(
    thread: Annotated[str, typer.Option("--thread", "-t", help="Thread to start in; a new one if omitted.")] = "",
    user: Annotated[str, typer.Option(help="User id to talk as (default: your login name).")] = "",
    worker: Annotated[bool, typer.Option(help="Run a worker in this process (off: rely on `bot worker`).")] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show INFO logs on stderr.")] = False,
) -> None:
    """Talk to the bot interactively. Each line is a message in the current thread; replies stream in.

    Commands: /new starts a new thread, /thread NAME switches, /help lists commands, /quit leaves.
    """
    from adapters.console.repl import run_console
    from jobs.worker import in_process_worker

    settings = load_settings()
    # -v shows what its help says: INFO (a turn's intake and run lines); quiet otherwise, the reply is the output.
    configure_logging("INFO" if verbose else "WARNING", json=settings.log_json)
    raise typer.Exit(
        run_async(
            run_console(settings, ready_runtime, thread or None, user or None, in_process_worker if worker else None)
        )
    )
