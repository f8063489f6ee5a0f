"""The arq worker under load, against real Redis: what polling costs while many turns are in flight."""

from __future__ import annotations

import asyncio

from adapters.console.inbound import console_thread, to_event
from bot.intake import accept
from bot.runtime import Runtime
from sandbox.openai_server import StandInLLM, Step
from tests.conftest import thread_view, wait_for

TURNS = 30


async def _calls(runtime: Runtime, command: str) -> int:
    stats = await runtime.redis.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


async def test_turns_in_flight_are_not_checked_again_on_every_poll(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM
) -> None:
    """30 turns held open 1.5 s by a slow model, with the worker polling every 10 ms: arq checks a job with a
    WATCH before it starts it; checking the running ones again on each poll cost three round trips per job per
    poll (thousands here), which at hundreds of turns in flight cost more than the turns."""
    stand_in.script(*(Step(reply=f"answer {i}", delay=1.5) for i in range(TURNS)))
    watches_before = await _calls(runtime, "watch")
    for i in range(TURNS):
        await accept(runtime, to_event(f"question {i}", f"held-{i}", user=f"user-{i}"))

    async def all_answered() -> bool:
        views = [await thread_view(runtime, console_thread(f"held-{i}")) for i in range(TURNS)]
        return all(view and view[-1].startswith("answer") for view in views)

    await wait_for(all_answered, timeout_s=30)
    watches = await _calls(runtime, "watch") - watches_before
    assert TURNS <= watches <= 2 * TURNS, f"{watches} WATCHes for {TURNS} jobs"
    assert sorted(
        view[-1] for view in [await thread_view(runtime, console_thread(f"held-{i}")) for i in range(TURNS)]
    ) == sorted(f"answer {i}" for i in range(TURNS))
