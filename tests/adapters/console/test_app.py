"""What `bot ask` and `bot console` show of a thread: an uploaded file is saved on the reader's disk and said so."""

from __future__ import annotations

import asyncio
import re
import stat
from pathlib import Path

from adapters.console.app import ConsoleSession, Transcript, entry_text, human_size, markdown_renderer
from adapters.console.inbound import console_thread
from adapters.console.outbound import ConsoleOutbound, stream_key
from bot.ports import FileUpload
from bot.runtime import Runtime
from sandbox.openai_server import StandInLLM, Step
from tests.conftest import wait_for


async def test_an_upload_is_shown_with_its_comment_and_where_it_was_saved(runtime: Runtime, tmp_path: Path) -> None:
    thread = console_thread("files")
    content = b"x" * 12_300
    posted = await ConsoleOutbound(runtime.redis).upload_file(
        thread,
        FileUpload(filename="transcript.txt", content=content, title="Transcript", comment="The full transcript."),
        idempotency_key="k-shown",
    )
    [(_, fields)] = await runtime.redis.xrange(stream_key(thread))
    shown = await entry_text(runtime.redis, fields, tmp_path / "uploads")
    saved = (tmp_path / "uploads" / posted.message_id / "transcript.txt").resolve()
    assert shown == f"The full transcript.\n📎 transcript.txt (12.3 kB) saved to {saved}"
    assert saved.read_bytes() == content
    assert [stat.S_IMODE(p.stat().st_mode) for p in (saved.parent.parent, saved.parent, saved)] == [0o700, 0o700, 0o600]


async def test_a_file_name_cannot_lead_out_of_the_uploads_folder(runtime: Runtime, tmp_path: Path) -> None:
    thread = console_thread("files")
    await ConsoleOutbound(runtime.redis).upload_file(
        thread, FileUpload(filename="../../escape.txt", content=b"hi", title=""), idempotency_key="k-escape"
    )
    [(_, fields)] = await runtime.redis.xrange(stream_key(thread))
    shown = await entry_text(runtime.redis, fields, tmp_path / "uploads")
    assert shown.startswith("📎 escape.txt (2 B) saved to ")
    [saved] = (tmp_path / "uploads").rglob("*.txt")
    assert saved.parent.parent == (tmp_path / "uploads")


async def test_an_upload_that_arrives_during_a_turn_is_shown_by_the_session(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM
) -> None:
    """`bot ask` prints what `ConsoleSession.send` hands it: the reply and, here, a file posted meanwhile."""
    stand_in.script(Step(reply="Done.", delay=1.0))
    shown: list[str] = []
    turn = asyncio.create_task(ConsoleSession(runtime).send("Transcribe it.", "media", on_text=shown.append))
    await wait_for(stand_in.chat_requests)
    await ConsoleOutbound(runtime.redis).upload_file(
        console_thread("media"),
        FileUpload(filename="transcript.txt", content=b"words", title="Transcript", comment="Here it is."),
        idempotency_key="k-turn",
    )
    result = await turn
    printed = "".join(shown)
    assert "Here it is.\n📎 transcript.txt (5 B) saved to " in printed
    assert printed.endswith("Done.")
    assert (runtime.settings.data_dir / "uploads").is_dir()
    assert result.status == "completed"


def test_sizes_read_like_a_file_manager() -> None:
    assert [human_size(n) for n in (5, 999, 12_300, 4_560_000)] == ["5 B", "999 B", "12.3 kB", "4.6 MB"]


def _screen(writes: list[str], width: int = 20) -> list[str]:
    """What a terminal shows after `writes`: just enough of one (wrapping, \\r, cursor up, clear to the end of
    the screen) to follow the moves Transcript makes."""
    rows, row, col = [""], 0, 0
    for text in writes:
        i = 0
        while i < len(text):
            if text.startswith("\x1b[J", i):
                rows[row] = rows[row][:col]
                del rows[row + 1 :]
                i += 3
            elif (colour := re.match(r"\x1b\[[0-9;]*m", text[i:])) is not None:
                i += colour.end()  # colours take no room
            elif text.startswith("\x1b[", i):
                end = text.index("A", i)
                row -= int(text[i + 2 : end])
                i = end + 1
            elif text[i] == "\r":
                col = 0
                i += 1
            elif text[i] == "\n":
                row, col = row + 1, 0
                rows[row:] = [rows[row] if row < len(rows) else ""]
                i += 1
            else:
                if col == width:  # the pending wrap of a full row
                    row, col = row + 1, 0
                    rows[row:] = [rows[row] if row < len(rows) else ""]
                rows[row] = rows[row][:col] + text[i] + rows[row][col + 1 :]
                col += 1
                i += 1
    return rows


def test_on_a_terminal_a_progress_line_is_redrawn_in_place() -> None:
    transcript = Transcript(in_place=True, width=20)
    writes = [
        transcript.apply("post", "m1", "Your question"),
        transcript.apply("post", "m2", "Transcribing… 10%"),
        transcript.apply("edit", "m2", "Transcribing… 55%"),
        transcript.apply("edit", "m2", "Done: a digest that wraps over two rows"),
        transcript.apply("edit", "m2", "Done."),
    ]
    assert _screen(writes) == ["Your question", "", "Done."]


def test_in_a_pipe_an_edit_follows_as_a_revision() -> None:
    transcript = Transcript()
    assert transcript.apply("post", "m1", "Transcribing… 10%") == "Transcribing… 10%"
    assert transcript.apply("edit", "m1", "Done.") == "\n[revised]\nDone."


def test_on_a_terminal_a_reply_is_drawn_as_rendered_markdown_as_it_grows() -> None:
    transcript = Transcript(in_place=True, width=30, render=markdown_renderer(30))
    writes = [
        transcript.apply("post", "m1", "Use **bo"),
        transcript.apply("edit", "m1", "Use **bold** and `code`"),
        transcript.apply(
            "edit", "m1", "Use **bold** and `code`\n\n- one item\n- another item that wraps past the edge"
        ),
    ]
    screen = [row.rstrip() for row in _screen(writes, width=30)]
    assert screen[0] == "Use bold and code"
    assert screen[1] == ""
    assert screen[2].strip() == "• one item"
    assert screen[3].strip().startswith("• another item that")
    assert "**" not in "".join(screen)
    assert transcript.shown.startswith("Use **bold**"), "what the thread holds stays the Markdown"
