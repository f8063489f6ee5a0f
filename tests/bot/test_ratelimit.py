from __future__ import annotations

from bot.ratelimit import RateLimiter
from bot.runtime import Runtime


async def test_allows_the_rate_then_says_how_long_to_wait(runtime: Runtime) -> None:
    limiter = RateLimiter(runtime.redis, per_minute=2)
    assert await limiter.hit("u1") is None
    assert await limiter.hit("u1") is None
    wait = await limiter.hit("u1")
    assert wait is not None
    assert 0 < wait <= 60
    assert await limiter.hit("u2") is None


async def test_zero_disables_the_limit(runtime: Runtime) -> None:
    limiter = RateLimiter(runtime.redis, per_minute=0)
    for _ in range(100):
        assert await limiter.hit("u1") is None
