"""What every sandbox server shares: an aiohttp application on a local port, started and stopped around
`async with`, with the port it really bound (ask for port 0 to get a free one)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self

from aiohttp import web


class LocalServer(ABC):
    # handler_cancellation: a client that gives up (timeout) cancels its handler, like a real server would.
    handler_cancellation = True

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None
        self._bound_port: int | None = None

    @abstractmethod
    def build_app(self) -> web.Application:
        """The routes: each server says its own."""

    async def before_stop(self) -> None:  # noqa: B027 (optional hook: most servers hold nothing open)
        """Let go of what would hold the server open (websockets, hanging handlers)."""

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError(f"{type(self).__name__} is already running")
        # A short shutdown_timeout: stop() must not wait a minute for hanging or slow-streaming handlers.
        runner = web.AppRunner(
            self.build_app(), access_log=None, handler_cancellation=self.handler_cancellation, shutdown_timeout=0.5
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._bound_port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        await self.before_stop()
        await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def bound_port(self) -> int:
        """The port actually bound (useful with port=0)."""
        if self._bound_port is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._bound_port
