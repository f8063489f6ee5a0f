"""One heartbeat for all of a worker's runs: leases held are pushed on in one statement, and a run whose lease
was taken from it (cancelled, or rescued after a stall) is told to stop."""

from __future__ import annotations

import asyncio
from datetime import datetime

from sqlalchemy import func, insert, select, update

from bot.runtime import Runtime
from bot.workflows.leases import LeaseKeeper
from bot.workflows.models import RUNS


async def _running(rt: Runtime, owner: str) -> int:
    async with rt.autocommit.connect() as conn:
        return int(
            (
                await conn.execute(
                    insert(RUNS)
                    .values(
                        workflow="test.long",
                        input={},
                        status="running",
                        wake_seq=1,
                        wake_at=func.now(),
                        attempts=1,
                        rescues=0,
                        lease_owner=owner,
                        lease_until=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, 1),
                    )
                    .returning(RUNS.c.id)
                )
            ).scalar_one()
        )


async def _lease_until(rt: Runtime, run_id: int) -> datetime:
    async with rt.autocommit.connect() as conn:
        value = (await conn.execute(select(RUNS.c.lease_until).where(RUNS.c.id == run_id))).scalar_one()
    assert isinstance(value, datetime)
    return value


async def test_held_leases_are_renewed_and_a_taken_one_is_reported_lost(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.model_copy(update={"workflow_lease_s": 0.6})  # a beat every 0.2 s
    kept, taken = await _running(runtime, "w:1"), await _running(runtime, "w:2")
    before = await _lease_until(runtime, kept)
    lost: list[str] = []
    keeper = LeaseKeeper(runtime)
    keeper.hold("w:1", lambda: lost.append("w:1"))
    keeper.hold("w:2", lambda: lost.append("w:2"))
    async with runtime.autocommit.connect() as conn:  # the sweeper gave run 2 to another worker
        await conn.execute(update(RUNS).where(RUNS.c.id == taken).values(lease_owner="other:9"))
    await asyncio.sleep(0.5)
    assert lost == ["w:2"], "only the run whose lease is gone is told to stop"
    assert await _lease_until(runtime, kept) > before, "the held lease was pushed on"
    keeper.drop("w:1")
    await asyncio.sleep(0.25)
    dropped = await _lease_until(runtime, kept)
    await asyncio.sleep(0.5)
    assert await _lease_until(runtime, kept) == dropped, "a lease let go is no longer renewed"
    await keeper.close()
