"""The ack benchmark's load generator against a real local HTTP server: answers counted, errors told apart,
connections kept alive, and the rate kept."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from bench.loadgen import http_request, open_loop


@pytest.fixture
async def server() -> AsyncIterator[tuple[int, set[tuple[str, int]]]]:
    peers: set[tuple[str, int]] = set()

    async def answer(request: web.Request) -> web.StreamResponse:
        peers.add(request.transport.get_extra_info("peername")[:2])  # type: ignore[union-attr]
        body = await request.read()
        if request.path == "/chunked":
            response = web.StreamResponse()
            response.enable_chunked_encoding()
            await response.prepare(request)
            await response.write(b"part one, ")
            await response.write(b"part two")
            await response.write_eof()
            return response
        if request.path == "/missing":
            return web.Response(status=404, text="no")
        return web.Response(text=f"got {len(body)} bytes")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield int(runner.addresses[0][1]), peers
    finally:
        await runner.cleanup()


async def test_every_request_is_answered_over_few_kept_alive_connections(
    server: tuple[int, set[tuple[str, int]]],
) -> None:
    port, peers = server
    requests = [http_request("POST", "127.0.0.1", port, "/events", {"X-N": str(n)}, b"x" * n) for n in range(100)]
    started = time.perf_counter()
    outcome = await open_loop("127.0.0.1", port, requests, rate=200)
    took = time.perf_counter() - started
    assert outcome.errors == {}
    assert len(outcome.latencies_s) == 100
    assert all(0 < latency < 1 for latency in outcome.latencies_s)
    assert 0.45 < took < 5, "100 requests at 200/s take about half a second"
    assert len(peers) < 20, f"{len(peers)} connections for 100 paced requests"


async def test_chunked_bodies_are_read_and_errors_are_counted_by_status(
    server: tuple[int, set[tuple[str, int]]],
) -> None:
    port, _ = server
    chunked = [http_request("GET", "127.0.0.1", port, "/chunked", {})] * 10
    missing = [http_request("GET", "127.0.0.1", port, "/missing", {})] * 5
    outcome = await open_loop("127.0.0.1", port, chunked + missing, rate=500)
    assert len(outcome.latencies_s) == 10
    assert outcome.errors == {"404": 5}


async def test_only_loopback_is_a_target() -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        await open_loop("10.0.0.1", 80, [b""], rate=1)
