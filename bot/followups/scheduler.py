"""Recurring schedules: APScheduler 3 with its job store in Postgres, run by exactly one process at a time.

APScheduler 3 must not share a job store between schedulers, so every worker runs a `SchedulerLeader` and only
the one holding a Postgres advisory lock (on a connection it keeps open) runs the scheduler. If that process
dies, its connection closes, the lock is free, and another worker takes over within
SCHEDULER_SYNC_INTERVAL_S; `coalesce` and `misfire_grace_time` make a tick missed meanwhile fire once.

The `schedules` table is the truth (commands write it from any process); the leader mirrors its active rows into
the job store. A firing starts a `recurring_reminder` run whose dedupe key is the schedule and the tick's time,
so a tick can never produce two runs, even around a change of leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from datetime import datetime
from typing import Any

import sqlalchemy
import structlog
from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Connection, Engine, text

from bot.db import SCHEDULER_CONNECTIONS
from bot.followups.triggers import build_trigger
from bot.followups.workflows import RECURRING
from bot.runtime import Runtime
from bot.stores.followups import active_schedules, load_schedule
from bot.threads import thread_to_json
from bot.workflows.runs import start_run

log = structlog.get_logger(__name__)

# Any constant works; every process must use the same one.
LEADER_LOCK_ID = 0x7363686564
JOB_PREFIX = "schedule-"


def tick(schedule_id: int) -> None:
    """The job APScheduler runs. The work happens in the submission listener, which knows the tick's time."""


def sync_url(url: str) -> str:
    for prefix in ("postgresql+asyncpg://", "postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class SchedulerLeader:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._interval = runtime.settings.scheduler_sync_interval_s
        self._engine: Engine | None = None
        self._lock_conn: Connection | None = None
        self._scheduler: BackgroundScheduler | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # The sync work runs on a thread that outlives a cancelled await: stopping waits for it and then closes.
        self._guard = threading.Lock()
        self._closing = False
        self.is_leader = False

    async def run_forever(self) -> None:
        self._loop = asyncio.get_running_loop()
        # Bounded (the leader's lock, a reconcile, the job store's thread): counted in bot.db.peak_connections.
        self._engine = sqlalchemy.create_engine(
            sync_url(self._runtime.settings.database_url),
            pool_size=SCHEDULER_CONNECTIONS // 2,
            max_overflow=SCHEDULER_CONNECTIONS - SCHEDULER_CONNECTIONS // 2,
        )
        try:
            while True:
                try:
                    await asyncio.to_thread(self._step)
                except Exception as exc:  # noqa: BLE001 (a database blip must not end leadership attempts)
                    log.warning("scheduler leader step failed; retrying", error=str(exc))
                    await asyncio.to_thread(self._guarded_step_down)
                await asyncio.sleep(self._interval)
        finally:
            self._closing = True
            self._guarded_step_down()
            self._engine.dispose()

    def _guarded_step_down(self) -> None:
        with self._guard:
            self._step_down()

    def _step(self) -> None:
        with self._guard:
            if self._closing or (not self.is_leader and not self._try_lead()):
                return
            assert self._lock_conn is not None
            self._lock_conn.execute(text("SELECT 1"))  # the lock lives as long as this connection does
            self._reconcile()

    def _try_lead(self) -> bool:
        assert self._engine is not None
        conn = self._engine.connect()
        got = conn.execute(text("SELECT pg_try_advisory_lock(:id)"), {"id": LEADER_LOCK_ID}).scalar()
        conn.commit()
        if not got:
            conn.close()
            return False
        self._lock_conn = conn
        scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=self._engine)},
            job_defaults={"coalesce": True, "misfire_grace_time": 300, "max_instances": 1},
            timezone="UTC",
        )
        scheduler.add_listener(self._submitted, EVENT_JOB_SUBMITTED)
        # Started before reconciling (the caller does it next): only a started scheduler lists the jobs already in
        # the store, and a job missing from that list would be added again with a new phase.
        scheduler.start()
        self._scheduler = scheduler
        self.is_leader = True
        log.info("this process now runs the recurring-schedule scheduler")
        return True

    def _step_down(self) -> None:
        if self._scheduler is not None:
            with contextlib.suppress(Exception):
                self._scheduler.shutdown(wait=False)
            self._scheduler = None
        if self._lock_conn is not None:
            with contextlib.suppress(Exception):
                # The job store disposed the engine's pool on shutdown; invalidate closes this connection for real
                # (releasing the lock) instead of returning it to a pool nobody will close.
                self._lock_conn.invalidate()
                self._lock_conn.close()
            self._lock_conn = None
        if self.is_leader:
            log.info("this process no longer runs the scheduler")
        self.is_leader = False

    def _reconcile(self) -> None:
        """Mirror the active `schedules` rows into the job store: add what is new, remove what was cancelled."""
        assert self._engine is not None
        assert self._scheduler is not None
        scheduler = self._scheduler
        with self._engine.connect() as conn:
            active = {row.id: row for row in active_schedules(conn)}
        jobs = {job.id for job in scheduler.get_jobs()}
        for schedule_id, row in active.items():
            job_id = f"{JOB_PREFIX}{schedule_id}"
            if job_id not in jobs:
                trigger = build_trigger(row.trigger, row.created_at)
                scheduler.add_job(tick, trigger, args=[schedule_id], id=job_id, replace_existing=True)
                log.info("schedule added", schedule_id=schedule_id)
        for job_id in jobs:
            if job_id.startswith(JOB_PREFIX) and int(job_id[len(JOB_PREFIX) :]) not in active:
                scheduler.remove_job(job_id)
                log.info("schedule removed", job_id=job_id)

    def _submitted(self, event: JobSubmissionEvent) -> None:
        """Runs on APScheduler's thread: hand each due tick to the event loop."""
        if not event.job_id.startswith(JOB_PREFIX) or self._loop is None:
            return
        schedule_id = int(event.job_id[len(JOB_PREFIX) :])
        for run_time in event.scheduled_run_times:
            asyncio.run_coroutine_threadsafe(fire(self._runtime, schedule_id, run_time), self._loop)


async def fire(runtime: Runtime, schedule_id: int, run_time: datetime) -> int | None:
    """Start the run for one tick of a schedule (once: the tick's time is in the dedupe key)."""
    schedule = await load_schedule(runtime, schedule_id)
    if schedule is None or schedule.status != "active":
        return None
    payload: dict[str, Any] = {
        "schedule_id": schedule_id,
        "thread": thread_to_json(schedule.thread),
        "user_id": schedule.user_id,
        "text": schedule.text,
        "tick": run_time.isoformat(),
    }
    started = await start_run(
        runtime,
        RECURRING,
        payload,
        dedupe_key=f"schedule:{schedule_id}:{run_time.isoformat()}",
        thread_id=schedule.thread_id,
        user_id=schedule.user_id,
        description=f"s{schedule_id} tick {run_time:%Y-%m-%d %H:%M:%S %Z}: {schedule.text}",
    )
    log.info("schedule fired", schedule_id=schedule_id, tick=run_time.isoformat(), run_id=started.run_id)
    return started.run_id
