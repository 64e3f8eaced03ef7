"""The protocol's graceful shutdown: notify every client, let them drain, then stop.

The policy only; what it needs of uvicorn's server is in
:class:`~.uvicorn_server.ServerHooks` (the module that touches uvicorn's insides).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any, Final, Protocol

from .uvicorn_server import ServerHooks

__all__ = ["SHUTDOWN_CLOSE_BOUND", "DrainingServer", "Drains"]

SHUTDOWN_CLOSE_BOUND: Final = 2.0
"""Seconds after the drain within which connections must close before they are aborted."""

log = logging.getLogger("reference_server")


class Drains(Protocol):
    """What :class:`DrainingServer` stops first: the application's own shutdown."""

    async def shutdown(self) -> None:
        """Notify every client, let them drain, disconnect them."""
        ...


class DrainingServer(ServerHooks):
    """uvicorn's server with the protocol's graceful shutdown on SIGTERM/SIGINT.

    The first signal sends ``system:maintenance`` to every client, waits for
    the drain, disconnects them and only then lets uvicorn stop; the process
    exits 0. A second signal forces the exit.

    Args:
        config: uvicorn's configuration (``uvicorn.Config``).
        app: the application whose shutdown runs first.
        signals: handle SIGTERM/SIGINT (off when embedded in tests).
    """

    def __init__(self, config: Any, app: Drains, *, signals: bool) -> None:
        super().__init__(config, signals=signals)
        self._intraday = app
        self._draining: asyncio.Task[None] | None = None

    def on_exit_signal(self, sig: int) -> None:
        if self._draining is not None or self.loop is None:
            self.stop_serving(force=self._draining is not None)
            return
        log.info("received %s: draining", signal.Signals(sig).name)
        self.loop.call_soon_threadsafe(self._begin_drain)

    def _begin_drain(self) -> None:
        self._draining = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        try:
            await self._intraday.shutdown()
        finally:
            self.stop_serving(force=False)

    async def before_closing(self) -> None:
        # uvicorn waits timeout_graceful_shutdown (5 s) for every connection to
        # close, then cancels what is left and logs it at ERROR. A client that
        # stopped reading never closes: its WebSocket's writer waits on it. By
        # now the drain has told every client and closed every session, so a
        # connection still open after SHUTDOWN_CLOSE_BOUND is stuck: abort its
        # transport, which ends its tasks (and the API requests finish first).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SHUTDOWN_CLOSE_BOUND
        # uvicorn offers no event for "the last connection closed": poll.
        while self.open_connections() and loop.time() < deadline and not self.forced:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        stuck = self.open_connections()
        if stuck:
            log.info("shutdown: aborting %d connection(s) that did not close", len(stuck))
            for connection in stuck:
                self.abort(connection)

    async def stop(self) -> None:
        """Drain and stop from code (what a signal does)."""
        if self._draining is None:
            self._begin_drain()
        assert self._draining is not None
        await self._draining
