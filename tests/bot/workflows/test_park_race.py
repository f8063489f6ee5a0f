"""The lost wake-up race, played out with real locks: an event settles a run's wait while the run is still
`running` and about to park. Whichever commits first, the run must end up due, not waiting for ever."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, insert, select

from bot.runtime import Runtime
from bot.workflows import events, store
from bot.workflows.models import RUNS, WAITS

EVENT = "test.ping"


async def _running_run_with_a_pending_wait(rt: Runtime) -> int:
    async with rt.autocommit.connect() as conn:
        run_id = (
            await conn.execute(
                insert(RUNS)
                .values(
                    workflow="test.waiter",
                    input={},
                    status="running",
                    wake_seq=3,
                    wake_at=func.now(),
                    attempts=1,
                    rescues=0,
                    lease_owner="w1",
                    lease_until=func.now() + func.make_interval(0, 0, 0, 0, 0, 1),
                )
                .returning(RUNS.c.id)
            )
        ).scalar_one()
        await conn.execute(
            insert(WAITS).values(
                run_id=run_id, step_id="ping", event_name=EVENT, match={"n": 1}, since=func.now(), state="pending"
            )
        )
    return int(run_id)


async def test_an_event_committed_while_the_run_parks_still_wakes_it(runtime: Runtime) -> None:
    run_id = await _running_run_with_a_pending_wait(runtime)
    data = {"n": 1}
    async with runtime.engine.connect() as sender:
        # The event's statement runs first and holds its locks: the wait is matched, the run (still `running`)
        # is not woken by it.
        transaction = await sender.begin()
        event_id, created_at = (
            await sender.execute(events._INSERT, {"b_name": EVENT, "b_data": data, "b_key": None})
        ).one()
        [(matched_run, _, seq)] = (
            await sender.execute(
                events._RESOLVE,
                {"b_name": EVENT, "b_data": data, "b_created_at": created_at, "b_event_id": event_id},
            )
        ).all()
        assert (matched_run, seq) == (run_id, None)
        # The run parks now: its statement starts (and reads the wait as pending) before the event commits.
        parking = asyncio.create_task(store.park(runtime, run_id, "w1", "waiting", None, "ping"))
        await asyncio.sleep(0.3)
        assert not parking.done(), "parking waits for the event's lock on the run"
        await transaction.commit()
    parked = await asyncio.wait_for(parking, 5)
    assert parked is not None
    new_seq, wake_at = parked
    assert wake_at is not None, "the run is due at once, not waiting for an event that already came"
    async with runtime.autocommit.connect() as conn:
        row = (await conn.execute(select(RUNS.c.status, RUNS.c.wake_seq).where(RUNS.c.id == run_id))).one()
    assert tuple(row) == ("waiting", new_seq)


async def test_an_event_after_the_run_parked_wakes_it_through_the_event(runtime: Runtime) -> None:
    run_id = await _running_run_with_a_pending_wait(runtime)
    parked = await store.park(runtime, run_id, "w1", "waiting", None, "ping")
    assert parked is not None
    assert parked[1] is None, "nothing settled the wait yet: it parks until an event"
    sent = await events.send_event(runtime, EVENT, {"n": 1})
    assert sent.woken_runs == (run_id,)
    async with runtime.autocommit.connect() as conn:
        row = (await conn.execute(select(RUNS.c.wake_seq, RUNS.c.wake_at).where(RUNS.c.id == run_id))).one()
    assert row[0] == parked[0] + 1
    assert row[1] is not None
