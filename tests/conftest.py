"""Shared fixtures: real Postgres and Redis (embedded servers, one per test session), the stand-in LLM over
HTTP, and the production worker running in the test's event loop."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select, text, update

from adapters.console.outbound import stream_key
from bot.catalog import WORKFLOWS
from bot.clock import FakeClock
from bot.config import Settings
from bot.db import create_engine, upgrade
from bot.embedded import EmbeddedPostgres, EmbeddedRedis
from bot.events import ThreadRef
from bot.models import MESSAGES
from bot.runtime import Runtime
from bot.workflows.models import RUNS, STEPS
from bot.workflows.registry import Workflows
from bot.workflows.runs import enqueue_run
from jobs.queue import open_runtime
from jobs.worker import in_process_worker
from sandbox.openai_server import StandInLLM
from tests.s3_fixtures import S3Server, s3_bucket, s3_client, s3_server

__all__ = ["S3Server", "s3_bucket", "s3_client", "s3_server"]  # fixtures for every test, from their own module

TABLES = (
    "messages",
    "threads",
    "workspaces",
    "user_preferences",
    "workflow_runs",
    "workflow_steps",
    "workflow_waits",
    "workflow_events",
    "outbox",
    "schedules",
    "apscheduler_jobs",
    "slack_installations",
    "media",
    "media_utterances",
    "media_tags",
    "media_chunks",
    "token_usage",
)


@pytest.fixture(scope="session")
def services_dir() -> Iterator[Path]:
    # Short path: Postgres's Unix socket path must fit in about 100 bytes.
    folder = Path(tempfile.mkdtemp(prefix="tb-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(services_dir: Path) -> Iterator[str]:
    postgres = EmbeddedPostgres(services_dir)
    url = postgres.start()

    async def migrate() -> None:
        engine = create_engine(url, pool_size=1)
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(migrate())
    yield url
    postgres.stop()


@pytest.fixture(scope="session")
def redis_url(services_dir: Path) -> Iterator[str]:
    redis = EmbeddedRedis(services_dir)
    url = redis.start()
    yield url
    redis.stop()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's environment or .env file."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)


SPEECH = "Thanks for joining the planning call. We agreed to ship the beta on Friday."


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real speech, spoken by espeak-ng (`.ci/run` installs it; `apt-get install espeak-ng` does here)."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.fail("the media tests need espeak-ng to speak a real audio file: apt-get install espeak-ng")
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    subprocess.run([espeak, "-w", str(path), SPEECH], check=True)
    return path


@pytest.fixture
async def stand_in() -> AsyncIterator[StandInLLM]:
    async with StandInLLM() as llm:
        yield llm


@pytest.fixture
def settings(database_url: str, redis_url: str, stand_in: StandInLLM, tmp_path: Path) -> Settings:
    return make_settings(database_url, redis_url, stand_in.base_url, tmp_path)


def make_settings(database_url: str, redis_url: str, llm_url: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": redis_url,
        "openai_base_url": llm_url,
        "openai_api_key": "test-key",
        "data_dir": data_dir,
        "retry_base_delay_s": 0.05,
        "retry_max_delay_s": 0.5,
        "worker_poll_delay_s": 0.01,
        "openai_timeout_s": 5.0,
        "workflow_lease_s": 3.0,
        "workflow_sweep_interval_s": 0.5,
        "stale_pending_after_s": 1.0,
        "scheduler_sync_interval_s": 0.5,
        # A burst of messages still becomes one turn, but a test's turn does not wait most of a second to start.
        "burst_window_s": 0.05,
        **overrides,
    }
    return Settings(_env_file=None, **values)


@pytest.fixture
def clock() -> FakeClock:
    """The clock of the test's runtime and of its worker: the wall clock's time until the test moves it on (a
    reminder "in 2 hours" fires when the test advances it, not two hours later)."""
    return FakeClock()


@pytest.fixture
async def runtime(settings: Settings, clock: FakeClock) -> AsyncIterator[Runtime]:
    async with open_runtime(settings) as rt:
        rt.clock = clock
        await reset_state(rt)
        yield rt


async def reset_state(rt: Runtime) -> None:
    async with rt.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    await rt.redis.flushdb()


@pytest.fixture
async def worker(runtime: Runtime, request: pytest.FixtureRequest) -> AsyncIterator[asyncio.Task[None]]:
    """The production arq worker, consuming the test's queue in this event loop. It runs the bot's workflows and
    those the test module defines in `TEST_WORKFLOWS`."""
    async with in_process_worker(runtime.settings, workflows=workflows_for(request), clock=runtime.clock) as task:
        yield task


def workflows_for(request: pytest.FixtureRequest) -> Workflows:
    return WORKFLOWS.with_(*getattr(request.module, "TEST_WORKFLOWS", ()))


async def stream_entries(rt: Runtime, thread: ThreadRef) -> list[dict[str, str]]:
    """Everything the console platform received for `thread`, as the user would see it arrive."""
    entries = await rt.redis.xrange(stream_key(thread))
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


async def thread_view(rt: Runtime, thread: ThreadRef) -> list[str]:
    """The thread's messages as the user finally sees them: each posted message with its last edit."""
    texts: dict[str, str] = {}
    for entry in await stream_entries(rt, thread):
        if entry["op"] == "post" or entry["id"] in texts:
            texts[entry["id"]] = entry["text"]
    return list(texts.values())


async def wait_for(predicate: Callable[[], Any], timeout_s: float = 15.0, interval_s: float = 0.02) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(interval_s)


def subprocess_env(settings: Settings) -> dict[str, str]:
    """The environment a `bot` subprocess needs to use the test's services."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in {n.upper() for n in Settings.model_fields}}
    env.update(
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url,
        OPENAI_BASE_URL=settings.openai_base_url,
        OPENAI_API_KEY=settings.openai_api_key.get_secret_value(),
        DATA_DIR=str(settings.data_dir),
        RETRY_BASE_DELAY_S="0.05",
        WORKER_POLL_DELAY_S="0.01",
        BURST_WINDOW_S=str(settings.burst_window_s),
    )
    if settings.slack_bot_token.get_secret_value():
        env.update(
            SLACK_BOT_TOKEN=settings.slack_bot_token.get_secret_value(),
            SLACK_SIGNING_SECRET=settings.slack_signing_secret.get_secret_value(),
            SLACK_API_URL=settings.slack_api_url,
        )
    return env


@asynccontextmanager
async def worker_process(runtime: Runtime, name: str, **settings: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """`bot worker` as a process of its own (to be killed with SIGKILL), with a short lease and sweep so another
    worker rescues its runs within seconds (unless `settings` say otherwise); stopped with SIGTERM at the end."""
    env = subprocess_env(runtime.settings)
    env.update(WORKFLOW_LEASE_S="2", WORKFLOW_SWEEP_INTERVAL_S="0.5", STALE_PENDING_AFTER_S="1", LOG_LEVEL="INFO")
    env.update(settings)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", "worker", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def run_bot(*args: str, env: dict[str, str], timeout_s: float = 90) -> tuple[int, str, str]:
    """`python -m cli ARGS` (what `bot ARGS` runs) as a user runs it; returns the exit code, stdout and stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout_s)
    assert proc.returncode is not None
    return proc.returncode, stdout.decode(), stderr.decode()


def post_ids(entries: list[dict[str, str]]) -> list[str]:
    """The ids of the messages posted (not edited) in a console thread's stream."""
    return [entry["id"] for entry in entries if entry["op"] == "post"]


async def run_of(rt: Runtime, message_id: int) -> int:
    async with rt.autocommit.connect() as conn:
        return int((await conn.execute(select(MESSAGES.c.run_id).where(MESSAGES.c.id == message_id))).scalar_one())


async def run_status_is(rt: Runtime, run_id: int, status: str) -> bool:
    async with rt.autocommit.connect() as conn:
        return bool((await conn.execute(select(RUNS.c.status).where(RUNS.c.id == run_id))).scalar_one() == status)


async def replay_after(
    rt: Runtime, run_id: int, message_id: int, lost_steps: Sequence[str], message_status: str
) -> None:
    """Put a finished run back where a crash would have left it: `lost_steps` unrecorded, the run pending again
    (with a new wake-up) and its message in `message_status`; then wait until it has completed once more."""
    async with rt.autocommit.connect() as conn:
        await conn.execute(delete(STEPS).where(STEPS.c.run_id == run_id, STEPS.c.step_id.in_(lost_steps)))
        await conn.execute(update(MESSAGES).where(MESSAGES.c.id == message_id).values(status=message_status))
        seq = (
            await conn.execute(
                update(RUNS)
                .where(RUNS.c.id == run_id)
                .values(status="pending", wake_seq=RUNS.c.wake_seq + 1, wake_at=func.now(), finished_at=None)
                .returning(RUNS.c.wake_seq)
            )
        ).scalar_one()
    await enqueue_run(rt, run_id, seq)
    await wait_for(lambda: run_status_is(rt, run_id, "completed"))


def rate_limited(platform: str) -> float:
    """The process's count of a platform's 429s, as `/metrics` reports it."""
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("threadbot_platform_rate_limited_total", {"platform": platform}) or 0.0
