"""context: time to build a turn's prompt as the thread grows from 10 to 100,000 messages (it must stay flat)."""

from __future__ import annotations

import time

from sqlalchemy import text

from adapters.console.inbound import to_event
from bench.harness import services
from bench.report import Result, summary_ms
from bot.context import gather_context
from bot.intake import accept
from bot.stores.messages import load_turn
from bot.stores.preferences import load_preferences
from bot.tokens import count_tokens
from jobs.queue import open_runtime

SIZES = (10, 1_000, 10_000, 100_000)


async def run(repeats: int = 300) -> Result:
    rows = []
    async with services(with_stand_in=False) as (settings, _), open_runtime(settings) as rt:
        for size in SIZES:
            thread = f"ctx-{size}"
            first = await accept(rt, to_event("start", thread, user="bench", event_id=f"{thread}-0"))
            body = "a message of a realistic length, about thirty words long, " * 3
            async with rt.engine.begin() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO messages (thread_id, role, author_id, text, token_count, status, attempts) "
                        "SELECT :thread, CASE WHEN n % 2 = 0 THEN 'user' ELSE 'assistant' END, 'bench', :body, "
                        ":tokens, 'completed', 0 FROM generate_series(1, :size) AS n"
                    ),
                    {
                        "thread": first.thread_id,
                        "size": size,
                        "body": body,
                        "tokens": count_tokens(body, rt.settings.openai_model),
                    },
                )
                await conn.execute(text("ANALYZE messages"))
            turn_id = (await accept(rt, to_event("question", thread, user="bench", event_id=f"{thread}-q"))).message_id
            times: list[float] = []
            included = 0
            async with rt.autocommit.connect() as conn:
                turn = await load_turn(conn, turn_id)
                assert turn is not None
                for _ in range(repeats):
                    started = time.perf_counter()
                    prefs = await load_preferences(conn, "console", "local", "bench")
                    prompt = await gather_context(conn, settings, turn, prefs)
                    times.append(time.perf_counter() - started)
                    included = prompt.history_included
            rows.append({"thread messages": f"{size:,}", "history in prompt": included, **summary_ms(times)})
    worst = max(float(str(r["p50_ms"])) for r in rows)
    return Result(
        "context",
        rows,
        targets=[
            f"prompt build for a 100,000-message thread <= 10 ms: p50 {rows[-1]['p50_ms']} ms "
            f"({'met' if worst <= 10 else 'NOT met'})"
        ],
        notes=[
            f"budget {settings.context_token_budget} tokens, at most {settings.context_max_messages} rows read; "
            "includes loading the user's preferences: two queries."
        ],
    )
