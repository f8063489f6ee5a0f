"""An open-loop HTTP/1.1 load generator on raw asyncio streams, for measuring an ack path in milliseconds.

Open loop: request n is sent at start + n / rate whether or not earlier ones were answered, and its latency is
counted from that scheduled time, so a server that falls behind shows it instead of slowing the generator down.
The requests are built whole beforehand and sent over kept-alive connections (a new one only when every open one
is busy), and the generator's own garbage collector is off while it runs: a general-purpose client (httpx) added
tens of milliseconds at p99 by itself, which the table would have blamed on the server.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@dataclass
class Outcome:
    sent: int
    elapsed_s: float
    latencies_s: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)


def http_request(method: str, host: str, port: int, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    """One request as bytes on the wire."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response whole; returns its status and whether the server keeps the connection open."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
    status = int(head[9:12])
    length = 0
    chunked, keep_alive = False, True
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value:
            chunked = True
        elif name == "connection" and "close" in value:
            keep_alive = False
    if chunked:
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            await reader.readexactly(size + 2)
        await reader.readuntil(b"\r\n")
    elif length:
        await reader.readexactly(length)
    return status, keep_alive


async def open_loop(
    host: str, port: int, requests: Sequence[bytes], rate: float, *, timeout_s: float = 10.0
) -> Outcome:
    """Send `requests` at `rate` per second to host:port (127.0.0.1 only) and time each answer."""
    if host != "127.0.0.1":
        raise ValueError("the load generator only targets 127.0.0.1")
    idle: list[Connection] = []
    outcome = Outcome(sent=len(requests), elapsed_s=0.0)

    def error(kind: str) -> None:
        outcome.errors[kind] = outcome.errors.get(kind, 0) + 1

    async def exchange(raw: bytes, scheduled: float) -> None:
        connection = idle.pop() if idle else await asyncio.open_connection(host, port)
        reader, writer = connection
        try:
            writer.write(raw)
            async with asyncio.timeout(timeout_s):
                status, keep_alive = await _read_response(reader)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            writer.close()
            error(type(exc).__name__)
            return
        finished = time.perf_counter()
        if keep_alive:
            idle.append(connection)
        else:
            writer.close()
        if status != 200:
            error(str(status))
            return
        outcome.latencies_s.append(finished - scheduled)

    gc.collect()
    gc.disable()
    try:
        # perf_counter, not loop.time(): uvloop's clock ticks in whole milliseconds.
        started = time.perf_counter()
        start = started + 0.05
        tasks = []
        for n, raw in enumerate(requests):
            scheduled = start + n / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(exchange(raw, scheduled)))
        await asyncio.gather(*tasks)
        outcome.elapsed_s = time.perf_counter() - started
    finally:
        gc.enable()
        for _, writer in idle:
            writer.close()
    return outcome
