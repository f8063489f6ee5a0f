"""The console's watcher: what reaches the thread while nobody waits for a reply, uploads included."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from adapters.console.inbound import console_thread
from adapters.console.outbound import ConsoleOutbound
from adapters.console.repl import ThreadWatcher
from bot.ports import FileUpload
from bot.runtime import Runtime
from tests.conftest import wait_for


async def test_an_upload_to_the_current_thread_is_shown_while_idle(
    runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    outbound, thread = ConsoleOutbound(runtime.redis), console_thread("idle")
    watcher = ThreadWatcher(runtime, "idle")
    watcher.start()
    pings = itertools.count()

    async def watching() -> bool:
        # The watcher follows only what arrives after its first read: ping until one shows that it is reading.
        await outbound.post_message(thread, "ping", idempotency_key=f"ping-{next(pings)}")
        await asyncio.sleep(0.05)
        return "ping" in capsys.readouterr().out

    try:
        await wait_for(watching)
        await outbound.upload_file(
            thread,
            FileUpload(filename="digest.md", content=b"# Digest\n", title="Digest", comment="Your weekly digest."),
            idempotency_key="k-idle",
        )
        out = await wait_for(lambda: (seen := capsys.readouterr().out) and "📎" in seen and seen)
    finally:
        await watcher.stop()
    assert "\nYour weekly digest.\n📎 digest.md (9 B) saved to " in out
    assert (runtime.settings.data_dir / "uploads").is_dir()
