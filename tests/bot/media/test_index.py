"""The retrieval index's width follows EMBEDDING_DIMENSIONS, end to end at a width other than 1,536: a worker
resizes an empty index, refuses to start on one of another width, and `bot index reembed` resizes a full one and
recomputes its vectors from the chunks' text. Each test has a database of its own (the shared one stays 1,536)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from asyncio.subprocess import PIPE, STDOUT
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from adapters.console.app import ConsoleSession
from adapters.console.files import file_ref
from bot.db import autocommit, create_engine, upgrade
from bot.errors import ConfigurationError
from bot.media.index import index_state, require_dimensions
from bot.runtime import Runtime
from jobs.queue import open_runtime
from jobs.worker import in_process_worker
from sandbox.openai_server import StandInLLM
from tests.conftest import make_settings, reset_state

VTT = "WEBVTT\n\n00:00:01.000 --> 00:00:04.000\n<v Ada>We ship the beta on Friday.\n"


@pytest.fixture
async def own_database(database_url: str) -> AsyncIterator[str]:
    name = f"tb_index_{uuid.uuid4().hex[:8]}"
    base = create_engine(database_url, pool_size=1)
    admin = autocommit(base)
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = database_url.replace("/threadbot?", f"/{name}?", 1)
    engine = create_engine(url, pool_size=1)
    await upgrade(engine)
    await engine.dispose()
    try:
        yield url
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        await base.dispose()


async def bot(*args: str, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", *args, env=env, stdout=PIPE, stderr=STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode is not None
    return process.returncode, " ".join(output.decode().split())


async def vector_widths(rt: Runtime) -> list[int]:
    async with rt.autocommit.connect() as conn:
        rows = await conn.execute(text("SELECT vector_dims(embedding) FROM media_chunks WHERE embedding IS NOT NULL"))
        return [row[0] for row in rows]


async def share_and_ask(rt: Runtime, stand_in: StandInLLM, tmp_path: Path, thread: str) -> str:
    """Share a transcript in `thread`, ask about it in the same channel, and return what the model was sent."""
    vtt = tmp_path / f"{thread}.vtt"
    vtt.write_text(VTT)
    async with in_process_worker(rt.settings) as worker:
        session = ConsoleSession(rt, user="ada")
        assert (await session.send("", thread, files=(file_ref(vtt),), worker=worker)).status == "completed"
        before = len(stand_in.chat_requests())
        assert (await session.send("When is the beta?", f"{thread}-q", worker=worker)).status == "completed"
    [asked] = stand_in.chat_requests()[before:]
    return json.dumps(asked["messages"])


async def test_a_256_wide_index_end_to_end_then_reembedded_at_64(
    own_database: str, redis_url: str, stand_in: StandInLLM, tmp_path: Path
) -> None:
    settings = make_settings(own_database, redis_url, stand_in.base_url, tmp_path, embedding_dimensions=256)
    async with open_runtime(settings) as rt:
        await reset_state(rt)
        # The worker's start resizes the empty index to the setting; the file's chunks are stored 256 wide and the
        # question finds them.
        assert "We ship the beta on Friday" in await share_and_ask(rt, stand_in, tmp_path, "first")
        assert set(await vector_widths(rt)) == {256}
        embedding_calls = [r.body for r in stand_in.requests if r.path.endswith("/embeddings")]
        assert {body["dimensions"] for body in embedding_calls} == {256}

        # Another width with chunks stored: a worker refuses to start, naming the fix.
        narrower = settings.model_copy(update={"embedding_dimensions": 64})
        with pytest.raises(ConfigurationError, match=r"holds 256-dimension vectors.*`bot index reembed`"):
            await require_dimensions(rt.engine, 64)

        # `bot index reembed` resizes and recomputes, with the local stand-in (no model key in its environment).
        env = {
            **{k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")},
            "DATABASE_URL": own_database,
            "REDIS_URL": redis_url,
            "EMBEDDING_DIMENSIONS": "64",
            "DATA_DIR": str(tmp_path / "data"),
            "COLUMNS": "200",
        }
        code, output = await bot("index", "reembed", env=env)
        assert code == 0, output
        assert "The index is 64 wide; embedded 1 chunks" in output
        assert set(await vector_widths(rt)) == {64}
        async with rt.autocommit.connect() as conn:
            state = await index_state(conn)
        assert (state.dimensions, state.chunks, state.missing) == (64, 1, 0)

        code, output = await bot("index", "status", env=env)
        assert code == 0, output
        assert "vector width: 64 EMBEDDING_DIMENSIONS: 64" in output
        assert "1 (0 without a vector)" in output

    # Workers at the new width start and still find the recomputed chunk.
    async with open_runtime(narrower) as rt:
        await require_dimensions(rt.engine, 64)
        before = len(stand_in.chat_requests())
        async with in_process_worker(rt.settings) as worker:
            session = ConsoleSession(rt, user="ada")
            assert (await session.send("When is the beta?", "second-q", worker=worker)).status == "completed"
        [asked] = stand_in.chat_requests()[before:]
        assert "We ship the beta on Friday" in json.dumps(asked["messages"])


async def test_an_empty_index_follows_the_setting_at_a_workers_start(
    own_database: str,
) -> None:
    engine = create_engine(own_database, pool_size=1)
    try:
        async with engine.connect() as conn:
            assert (await index_state(conn)).dimensions == 1536
        await require_dimensions(engine, 768)
        async with engine.connect() as conn:
            assert (await index_state(conn)).dimensions == 768
        await require_dimensions(engine, 768)  # already right: nothing to do
    finally:
        await engine.dispose()
