from __future__ import annotations

from bot.ratelimit import RateLimiter
from bot.runtime import Runtime


async def test_allows_the_rate_then_says_how_long_to_wait(runtime: Runtime) -> None:
    now = [60 * 28_333_333 + 15.0]  # 15 s into a minute
    limiter = RateLimiter(runtime.redis, per_minute=2, clock=lambda: now[0])
    assert await limiter.hit("u1") is None
    assert await limiter.hit("u1") is None
    assert await limiter.hit("u1") == 45.0
    assert await limiter.hit("u2") is None
    now[0] += 45  # the next minute starts afresh
    assert await limiter.hit("u1") is None


async def test_zero_disables_the_limit(runtime: Runtime) -> None:
    limiter = RateLimiter(runtime.redis, per_minute=0)
    for _ in range(100):
        assert await limiter.hit("u1") is None
