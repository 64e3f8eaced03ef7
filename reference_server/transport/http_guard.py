"""Bounds on TCP connections before a request reaches the application.

Idle or half-sent connections cost a file descriptor each, and uvicorn
keeps a connection that never completes a request forever: 1,100 of them
under a 1,024 file limit left no descriptor for a legitimate request, and
asyncio logged a traceback for every failed ``accept`` (33 MiB in 7 s).
:class:`ConnectionGuard` keeps four bounds:

- a **header deadline**: a connection that has no request under way (just
  opened, or between two requests of a kept-alive connection) must start one
  within ``header_timeout`` seconds, or it is closed. A request is under way
  from the moment the application receives it (its headers are complete)
  until its response is sent; a WebSocket is under way for good.
- a **cap** on open connections (HTTP and WebSocket alike), kept below the
  file limit; at the cap a newcomer closes the connection that has waited
  longest without a request, and is refused only if every connection has a
  request under way. A legitimate request is served whatever the number of
  idle connections (within a second: a burst that asyncio accepts in one
  go can still use up the descriptors for a moment, and asyncio then waits
  a second before accepting again).
- :func:`raise_file_limit`: the soft ``RLIMIT_NOFILE`` raised to the hard
  one at start-up.
- :func:`quiet_accept_failures`: one log line per interval for failed
  ``accept`` calls, with their count, instead of a traceback each.

What this relies on of uvicorn (how it makes the HTTP protocol, which
connection a request arrived on, how many are open) is in
:class:`~.uvicorn_server.HTTPConnectionHooks`; asyncio reports a failed
``accept`` to the loop's exception handler with the message
:data:`ACCEPT_FAILURE` (CPython 3.11 to 3.13), which
:func:`quiet_accept_failures` counts.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Awaitable
from typing import Any, cast

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .uvicorn_server import HTTPConnectionHooks, connection_of_request

__all__ = [
    "ConnectionGuard",
    "connection_cap",
    "file_limit",
    "quiet_accept_failures",
    "raise_file_limit",
]

log = logging.getLogger("reference_server.connections")

FILE_RESERVE = 64
"""Descriptors kept out of the cap: the store, the cluster's Redis, logs, files."""

ACCEPT_FAILURE = "socket.accept() out of system resource"
"""The message asyncio's event loop reports a failed ``accept`` with."""

UNLIMITED = 1 << 20
"""The file limit taken where there is none (or no ``resource`` module: Windows)."""


def file_limit() -> int:
    """The soft limit on open files of this process."""
    if sys.platform == "win32":
        return UNLIMITED
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else UNLIMITED


def connection_cap(max_sockets: int) -> int:
    """Open connections allowed: two per socket (a polling client's GET and POST) and
    room for the API, within the file limit less :data:`FILE_RESERVE`."""
    return max(8, min(file_limit() - FILE_RESERVE, 2 * max_sockets + 100))


def raise_file_limit() -> int:
    """Raise the soft file limit to the hard one (at start-up); the soft limit now."""
    if sys.platform == "win32":
        return UNLIMITED
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:  # some platforms cap it below "unlimited"
            log.warning("could not raise the open-file limit from %d: %s", soft, exc)
    return file_limit()


def quiet_accept_failures(loop: asyncio.AbstractEventLoop, interval: float = 10.0) -> None:
    """Log failed ``accept`` calls once per ``interval``, with their count; the rest as before."""
    previous = loop.get_exception_handler()
    state = {"next": 0.0, "count": 0}

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") != ACCEPT_FAILURE:
            if previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        state["count"] += 1
        now = time.monotonic()
        if now >= state["next"]:
            log.error(
                "accept failed %d time(s) in the last %.0f s: %s (open-file limit %d)",
                state["count"],
                interval,
                context.get("exception"),
                file_limit(),
            )
            state["next"], state["count"] = now + interval, 0

    loop.set_exception_handler(handler)


class ConnectionGuard:
    """The header deadline and the connection cap of one server.

    Args:
        header_timeout: seconds a connection may stay without a request under way.
        max_connections: open connections at most (HTTP and WebSocket).
    """

    def __init__(self, *, header_timeout: float, max_connections: int) -> None:
        self.header_timeout = header_timeout
        self.max_connections = max_connections
        # Connections without a request under way, the longest waiting first.
        self._waiting: dict[_GuardedConnection, None] = {}
        guard = self

        class Protocol(_GuardedConnection):
            _guard = guard

        self.protocol: type[asyncio.Protocol] = Protocol
        """What ``uvicorn.Config(http=...)`` takes."""

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """The application, telling the guard when each request starts and ends."""

        def guarded(scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
            # Not a coroutine: it hands over the application's awaitable, so that
            # no frame of the guard stays alive as long as a WebSocket does (and
            # none keeps uvicorn's HTTP protocol alive past the upgrade).
            connection = connection_of_request()
            if not isinstance(connection, _GuardedConnection) or scope["type"] not in (
                "http",
                "websocket",
            ):
                return app(scope, receive, send)
            connection.request_started()
            if scope["type"] == "http":
                return _request(app, connection, scope, receive, send)
            connection.forget()  # under way for good: the WebSocket protocol owns it now
            return app(scope, receive, send)

        return guarded

    def _admit(self, connection: _GuardedConnection, open_now: int) -> bool:
        if open_now >= self.max_connections:
            if not self._waiting:
                return False
            oldest = next(iter(self._waiting))
            oldest.close("the connection limit was reached; it had no request under way")
        self._wait(connection)
        return True

    def _wait(self, connection: _GuardedConnection) -> None:
        self._waiting[connection] = None

    def _done_waiting(self, connection: _GuardedConnection) -> None:
        self._waiting.pop(connection, None)


async def _request(
    app: ASGIApp, connection: _GuardedConnection, scope: Scope, receive: Receive, send: Send
) -> None:
    """One HTTP request of ``connection``: its deadline runs again once the response is sent."""

    async def sending(message: Message) -> None:
        await send(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            connection.request_ended()

    try:
        await app(scope, receive, sending)
    finally:
        connection.request_ended()


class _GuardedConnection(HTTPConnectionHooks):
    """uvicorn's HTTP protocol for one connection, behind the guard's deadline and cap."""

    _guard: ConnectionGuard

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._under_way = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, whatever its class: uvloop's TCPTransport does not
        # derive from asyncio.Transport (an isinstance check refused every connection).
        transport = cast(asyncio.Transport, transport)
        open_now = self.open_connections()
        if not self._guard._admit(self, open_now):
            log.warning("connection refused: %d open", open_now)
            transport.abort()
            return
        self._transport = transport
        self._arm()
        super().connection_made(transport)

    def eof_received(self) -> bool | None:
        if self._transport is None:
            return None
        return super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.forget()
        if self._transport is not None:
            super().connection_lost(exc)

    # -- the guard's side ---------------------------------------------------------

    def _arm(self) -> None:
        self._guard._wait(self)
        if self._deadline is None:
            loop = asyncio.get_running_loop()
            self._deadline = loop.call_later(self._guard.header_timeout, self._expired)

    def _disarm(self) -> None:
        self._guard._done_waiting(self)
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        self.close(f"no request within {self._guard.header_timeout:g} s")

    def close(self, reason: str) -> None:
        """Close the connection now (it has no request under way)."""
        self._disarm()
        if self._transport is not None and not self._transport.is_closing():
            log.debug("closing %s: %s", self._transport.get_extra_info("peername"), reason)
            self._transport.abort()

    def request_started(self) -> None:
        """The application received a request of this connection."""
        self._under_way = True
        self._disarm()

    def request_ended(self) -> None:
        """Its response is sent: the next request must come within the deadline."""
        if self._under_way and self._transport is not None and not self._transport.is_closing():
            self._under_way = False
            self._arm()

    def forget(self) -> None:
        """No more deadline for this connection (it closed, or is a WebSocket now)."""
        self._disarm()
        self._under_way = True
