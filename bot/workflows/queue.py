"""The wake-up queue port: how the engine asks for a run to be resumed (now, or at `wake_at`). Postgres holds the
run; a wake-up only says "look at it", so a lost one is repaired by the sweeper. `jobs.queue` implements it on arq."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class WakeQueue(Protocol):
    async def wake(self, run_id: int, seq: int, wake_at: datetime | None = None) -> bool:
        """Queue the wake-up of the run's `seq`-th parking; False when it was not queued (an id still held, or the
        queue unreachable: logged, and left to the sweeper)."""
        ...
