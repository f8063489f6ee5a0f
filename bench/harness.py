"""The system under benchmark: fresh embedded Postgres and Redis, the stand-in LLM and `bot worker` as separate
processes, all on 127.0.0.1, torn down at the end. The benchmark process plays the platform: it sends events
through intake and watches replies arrive on the console platform's streams."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bot.config import Settings
from bot.db import create_engine, upgrade
from bot.embedded import EmbeddedPostgres, EmbeddedRedis
from bot.runtime import Runtime
from jobs.queue import QUEUE_NAME, open_runtime


@dataclass
class Bench:
    settings: Settings
    runtime: Runtime
    llm_url: str
    workers: list[asyncio.subprocess.Process]

    async def set_latency(self, first_token_delay: float, token_delay: float = 0.0) -> None:
        async with httpx.AsyncClient() as client:
            root = self.llm_url.removesuffix("/v1")
            await client.post(f"{root}/_sandbox/reset")  # also forgets recorded requests
            await client.post(
                f"{root}/_sandbox/latency", json={"first_token_delay": first_token_delay, "token_delay": token_delay}
            )

    async def llm_requests(self) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(timeout=60) as client:
            response = await client.get(f"{self.llm_url.removesuffix('/v1')}/_sandbox/requests")
            return list(response.json()["requests"])


@asynccontextmanager
async def services(*, with_stand_in: bool = True) -> AsyncIterator[tuple[Settings, str]]:
    """Fresh Postgres and Redis (and the stand-in LLM in its own process), migrated, torn down afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="tbb-"))
    postgres, redis = EmbeddedPostgres(folder), EmbeddedRedis(folder)
    stand_in: asyncio.subprocess.Process | None = None
    try:
        database_url, redis_url = await asyncio.to_thread(postgres.start), await asyncio.to_thread(redis.start)
        engine = create_engine(database_url, pool_size=1)
        await upgrade(engine)
        await engine.dispose()
        llm_url = ""
        if with_stand_in:
            stand_in = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "sandbox.openai_server", "--port", "0", stdout=asyncio.subprocess.PIPE
            )
            assert stand_in.stdout is not None
            llm_url = (await asyncio.wait_for(stand_in.stdout.readline(), 30)).decode().strip()
        settings = Settings(
            _env_file=None, database_url=database_url, redis_url=redis_url, openai_base_url=llm_url,
            openai_api_key="bench", data_dir=folder, rate_limit_per_minute=0, log_level="WARNING",
            conversation_strategy=STRATEGY, conversation_strategies={},
        )  # fmt: skip
        yield settings, llm_url
    finally:
        if stand_in is not None:
            stand_in.terminate()
            await stand_in.wait()
        await asyncio.to_thread(redis.stop)
        await asyncio.to_thread(postgres.stop)
        shutil.rmtree(folder, ignore_errors=True)


# Each message answered at once on its own: the figures measure the durable path, not BURST_WINDOW_S, which the
# default strategy adds to a turn on purpose (README, "Several messages at once in one thread").
STRATEGY = "concurrent"
STRATEGY_ENV = {"CONVERSATION_STRATEGY": STRATEGY, "CONVERSATION_STRATEGIES": "{}"}


async def start_worker(settings: Settings, **env_overrides: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url,
           "OPENAI_BASE_URL": settings.openai_base_url, "OPENAI_API_KEY": "bench", "LOG_LEVEL": "WARNING",
           **STRATEGY_ENV, **env_overrides}  # fmt: skip
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "cli", "worker", env=env)


async def workers_ready(runtime: Runtime, procs: list[asyncio.subprocess.Process]) -> None:
    """Until the workers poll the queue: arq writes its health-check key once its start-up is done."""
    deadline = time.monotonic() + 60
    while not await runtime.redis.exists(f"{QUEUE_NAME}:health-check"):
        if time.monotonic() > deadline or any(p.returncode is not None for p in procs):
            raise RuntimeError("the worker did not start")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def system(workers: int = 1, **worker_env: str) -> AsyncIterator[Bench]:
    async with services() as (settings, llm_url), open_runtime(settings) as runtime:
        procs = [await start_worker(settings, **worker_env) for _ in range(workers)]
        try:
            await workers_ready(runtime, procs)
            yield Bench(settings=settings, runtime=runtime, llm_url=llm_url, workers=procs)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                await proc.wait()
