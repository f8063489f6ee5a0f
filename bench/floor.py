"""floor: the raw cost of the parts every turn is made of, measured in the same run as the other scenarios."""

from __future__ import annotations

import time

from sqlalchemy import text

from bench.harness import services
from bench.report import Result, summary_ms
from jobs.queue import open_runtime


async def measure_floor(iterations: int = 2000) -> dict[str, dict[str, float]]:
    async with services(with_stand_in=False) as (settings, _), open_runtime(settings) as rt:
        redis_times: list[float] = []
        for i in range(iterations):
            started = time.perf_counter()
            await rt.redis.zadd("bench:floor", {f"job-{i}": i})
            await rt.redis.zpopmin("bench:floor")
            redis_times.append(time.perf_counter() - started)

        async with rt.engine.begin() as conn:
            await conn.execute(text("INSERT INTO workspaces (platform, external_id, name) VALUES ('b', 'w', '')"))
            await conn.execute(
                text(
                    "INSERT INTO threads (platform, workspace_id, channel_id, thread_key) "
                    "SELECT 'b', id, 'c', 't' FROM workspaces"
                )
            )
        pg_times: list[float] = []
        insert = text(
            "INSERT INTO messages (thread_id, role, author_id, text, token_count, status, attempts) "
            "VALUES (1, 'user', 'u', :text, 10, 'completed', 0)"
        )
        select = text("SELECT role, text, token_count FROM messages WHERE thread_id = 1 ORDER BY id DESC LIMIT 20")
        for i in range(iterations // 2):
            started = time.perf_counter()
            async with rt.engine.begin() as conn:
                await conn.execute(insert, {"text": f"message {i}"})
            async with rt.engine.connect() as conn:
                (await conn.execute(select)).all()
            pg_times.append(time.perf_counter() - started)
    return {"redis": summary_ms(redis_times), "postgres": summary_ms(pg_times)}


async def run() -> Result:
    floor = await measure_floor()
    return Result(
        "floor",
        [
            {"operation": "Redis enqueue + dequeue (ZADD, ZPOPMIN)", **floor["redis"]},
            {"operation": "Postgres insert + indexed select of the last 20", **floor["postgres"]},
        ],
        notes=["Both through the clients the bot uses (redis-py asyncio, SQLAlchemy + asyncpg), over loopback."],
    )
