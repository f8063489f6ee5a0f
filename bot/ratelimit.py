"""Per-user rate limits in Redis (a fixed one-minute window: one INCR per message, shared by all processes)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError


class RateLimiter:
    def __init__(
        self, redis: Redis, per_minute: int, *, prefix: str = "ratelimit", clock: Callable[[], float] = time.time
    ) -> None:
        self._redis = redis
        self._per_minute = per_minute
        self._prefix = prefix
        self._clock = clock
        self._counted: str | None = None  # the window key the last allowed hit counted in

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
            self._counted = key
            return None
        return (window + 1) * 60 - now

    async def refund(self) -> None:
        """Take back the message the last allowed `hit` counted (it turned out to be a redelivery)."""
        key, self._counted = self._counted, None
        if key is None:
            return
        with contextlib.suppress(OSError, RedisError):  # Redis down: the user loses one message of this minute
            await self._redis.decr(key)
