"""One heartbeat for every run a worker holds.

A run's lease says which worker owns it until when; a worker that dies stops renewing and the sweeper hands the
run to another. The lease is short (WORKFLOW_LEASE_S, a few seconds) so a dead worker's reply moves on within
seconds, and renewing it per run would be one statement per run per beat: with hundreds of turns in flight that
is hundreds of statements a second. Here one statement renews all of this worker's leases at once, every third
of the lease, and tells each run whose lease is gone (cancelled, or taken over after a stall) to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import timedelta

import structlog
from sqlalchemy import bindparam, func, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import Interval, String

from bot.runtime import Runtime
from bot.workflows.models import RUNS

log = structlog.get_logger(__name__)
r = RUNS.c

_RENEW = (
    update(RUNS)
    .where(r.lease_owner == func.any(bindparam("owners", type_=ARRAY(String))), r.status == "running")
    .values(lease_until=func.now() + bindparam("lease", type_=Interval))
    .returning(r.lease_owner)
)


class LeaseKeeper:
    """Holds the leases of the runs this process is advancing; its loop runs while it holds any."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._held: dict[str, Callable[[], None]] = {}
        self._loop: asyncio.Task[None] | None = None

    def hold(self, owner: str, lost: Callable[[], None]) -> None:
        """Renew `owner`'s lease from now on; `lost` is called if it turns out to be gone."""
        self._held[owner] = lost
        if self._loop is None or self._loop.done():
            self._loop = asyncio.create_task(self._beat())

    def drop(self, owner: str) -> None:
        self._held.pop(owner, None)

    async def close(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop

    async def _beat(self) -> None:
        lease_s = self._runtime.settings.workflow_lease_s
        while self._held:
            await asyncio.sleep(lease_s / 3)
            owners = list(self._held)
            if not owners:
                return
            try:
                async with self._runtime.autocommit.connect() as conn:
                    params = {"owners": owners, "lease": timedelta(seconds=lease_s)}
                    alive = set((await conn.execute(_RENEW, params)).scalars())
            except Exception as exc:  # noqa: BLE001 (a blip must not stop the beat; the next one may work)
                log.warning("lease renewal failed", runs=len(owners), error=str(exc))
                continue
            for owner in owners:
                if owner not in alive and (lost := self._held.pop(owner, None)) is not None:
                    lost()
