"""Per-user rate limits in Redis (a fixed one-minute window: one INCR per message, shared by all processes)."""

from __future__ import annotations

import time
from collections.abc import Callable

from redis.asyncio import Redis


class RateLimiter:
    def __init__(
        self, redis: Redis, per_minute: int, *, prefix: str = "ratelimit", clock: Callable[[], float] = time.time
    ) -> None:
        self._redis = redis
        self._per_minute = per_minute
        self._prefix = prefix
        self._clock = clock

    async def hit(self, subject: str) -> float | None:
        """Count one message for `subject`. Returns None when allowed, else seconds until the next window."""
        if self._per_minute <= 0:
            return None
        now = self._clock()
        window = int(now // 60)
        key = f"{self._prefix}:{subject}:{window}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, 120)
            count, _ = await pipe.execute()
        if int(count) <= self._per_minute:
            return None
        return (window + 1) * 60 - now
