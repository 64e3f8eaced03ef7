"""The one module of the SDK that touches python-socketio.

A typed adapter over ``socketio.AsyncClient`` with its own reconnection and
SIGINT handling turned off (the SDK owns both), and one seam where its
exceptions become ours. A new adapter (and a new AsyncClient) is made for
every connection attempt, so reconnecting can never stack handlers or tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any

import engineio
import orjson
import socketio
import socketio.packet

from .exceptions import ConnectionLostError, IntradayError, RequestTimeoutError, ServerError

__all__ = ["SocketIOTransport", "explain", "map_exceptions"]

EventSink = Callable[..., Awaitable[Any]]
"""Receives every server event as ``(event, data=None, *more)``; what it returns is its ack.

It runs in a task of its own per message (python-engineio); its first step
must be synchronous, so that arrival order is kept."""


_STATUS = re.compile(r"status code (\d{3})")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def explain(exc: BaseException, path: str | None = None) -> str:
    """The cause of a failed connection in a user's words, with what to check.

    python-socketio reports most failures of a WebSocket connect as
    ``Connection error``; the cause is further down the exception chain
    (aiohttp's, then the socket's).
    """
    links = list(_chain(exc))
    tls = [link for link in links if isinstance(link, ssl.SSLError)]
    if tls or "[SSL" in str(exc):
        reason = next((r for r in (getattr(link, "reason", None) for link in tls) if r), None)
        shown = f" ({reason})" if reason else ""
        return f"TLS handshake failed{shown}: an https:// URL to a plain-http server?"
    for link in links:
        status = getattr(link, "status", None)
        found = _STATUS.search(str(link))
        if not isinstance(status, int) and found:
            status = int(found.group(1))
        if isinstance(status, int) and status >= 400:
            where = f" on path {path}" if path else ""
            hint = ": no Socket.IO endpoint there (check the path)" if status in (403, 404) else ""
            return f"HTTP {status}{where}{hint}"
        if isinstance(link, socket.gaierror):
            return f"unknown host ({link.strerror or link})"
        if isinstance(link, ConnectionRefusedError):
            return "connection refused: is the server running on this host and port?"
        if isinstance(link, TimeoutError) and not isinstance(link, RequestTimeoutError):
            return "timed out: no answer from the server"
    return str(exc) or type(exc).__name__


@contextlib.contextmanager
def map_exceptions(action: str, path: str | None = None) -> Iterator[None]:
    """Translate python-socketio and engineio exceptions into the SDK's."""
    try:
        yield
    except IntradayError:
        raise
    except socketio.exceptions.TimeoutError as exc:
        raise RequestTimeoutError(f"{action}: no answer in time") from exc
    except (
        socketio.exceptions.ConnectionError,
        socketio.exceptions.BadNamespaceError,
        engineio.exceptions.EngineIOError,
        TimeoutError,
        OSError,
    ) as exc:
        raise ConnectionLostError(f"{action}: {explain(exc, path)}") from exc


class _Json:
    """The JSON of this client's packets: orjson decodes, the standard library encodes.

    Decoding every incoming event is a third of a bare python-socketio
    client's CPU per message, and orjson does it about four times faster.
    It reads standard JSON only (no ``NaN``, no lone surrogates), and turns
    integers beyond 64 bits into floats instead of parsing them digit by
    digit. Encoding keeps the standard library's exact behaviour: requests
    are few, and its output is what the server has always read.
    """

    loads = staticmethod(orjson.loads)
    dumps = staticmethod(json.dumps)


class _Packet(socketio.packet.Packet):  # type: ignore[misc]  # python-socketio is untyped
    # A subclass, not AsyncClient(json=...): that option assigns the JSON
    # module on python-socketio's and python-engineio's shared Packet classes,
    # which would change every other client and server in the process.
    json = _Json

    def decode(self, encoded_packet: Any) -> int:
        """Decode a packet; an event or ack of the default namespace without id directly.

        That is every server event (``2["kpi:update",{...}]``): the general
        parser copies the text twice and scans it for an attachment count,
        a namespace and an id before the JSON. Anything else goes to it.
        """
        if (
            type(encoded_packet) is str
            and encoded_packet[1:2] == "["
            and "0" <= encoded_packet[0] <= "6"
        ):
            self.packet_type = ord(encoded_packet[0]) - 48  # "0".."6"
            self.namespace = None
            self.data = self.json.loads(encoded_packet[1:])
            return 0
        return super().decode(encoded_packet)  # type: ignore[no-any-return]


def _cheap_to_inspect(handler: EventSink) -> EventSink:
    # python-socketio calls inspect.iscoroutinefunction on the handler for
    # every event; on a bound method that costs about 0.5 us more than on a
    # partial of its function (it unwraps the method first). Calling either
    # is the same call.
    if inspect.ismethod(handler):
        return functools.partial(handler.__func__, handler.__self__)
    return handler


class SocketIOTransport:
    """One Socket.IO connection: open, request, receive, close."""

    def __init__(self, sink: EventSink, on_lost: Callable[[str], None]) -> None:
        self._client = socketio.AsyncClient(
            reconnection=False,
            handle_sigint=False,
            logger=False,
            engineio_logger=False,
            serializer=_Packet,
        )
        self._on_lost = on_lost
        self._closing = False
        self._refusal: Any = None
        # The sink itself, not a wrapper: one coroutine less per message. It
        # takes (event, data=None, *more), as python-socketio calls "*" handlers.
        self._client.on("*", _cheap_to_inspect(sink))
        self._client.on("disconnect", self._disconnected)
        self._client.on("connect_error", self._refused)

    async def _refused(self, data: Any = None) -> None:
        # python-socketio hands over {"message", "data": ERROR}; the ERROR is ``data``.
        inner = data.get("data") if isinstance(data, Mapping) else None
        self._refusal = inner if isinstance(inner, Mapping) else data

    async def _disconnected(self, reason: Any = None) -> None:
        if not self._closing:
            self._on_lost(str(reason or "disconnected"))

    @property
    def connected(self) -> bool:
        """Whether the namespace is connected."""
        return bool(self._client.connected)

    @property
    def sid(self) -> str | None:
        """The server's id for this socket."""
        sid = self._client.get_sid()
        return sid if isinstance(sid, str) else None

    @property
    def transport_name(self) -> str | None:
        """``websocket`` or ``polling`` while connected."""
        name = self._client.transport()
        return name if isinstance(name, str) else None

    async def open(
        self,
        url: str,
        *,
        path: str,
        transports: Sequence[str],
        headers: Mapping[str, str],
        timeout: float,
        auth: Mapping[str, Any] | None = None,
    ) -> None:
        """Connect within ``timeout`` seconds, optionally with a handshake ``auth`` object.

        Raises:
            ServerError: the server refused the handshake with a protocol ERROR.
            ConnectionLostError: refused otherwise, unreachable or too slow.
        """
        self._refusal = None
        try:
            with map_exceptions(f"connect to {url}", path):
                # asyncio.timeout, never wait_for: on 3.11 wait_for drops a cancellation
                # that meets the connect's own end (a refused connect ends at once), and
                # a supervisor told to stop went on retrying for ever.
                async with asyncio.timeout(timeout):
                    await self._client.connect(
                        url,
                        headers=dict(headers),
                        auth=dict(auth) if auth is not None else None,
                        transports=list(transports),
                        socketio_path=path.strip("/"),
                        wait_timeout=timeout,
                    )
        except ConnectionLostError as exc:
            if isinstance(self._refusal, Mapping) and "code" in self._refusal:
                raise ServerError.from_wire(self._refusal) from exc
            raise

    async def call(
        self,
        event: str,
        data: Any,
        timeout: float,
        *,
        on_answer: Callable[[Any], None] | None = None,
    ) -> Any:
        """Send a request and wait for its ack.

        ``on_answer`` runs with the ack the moment it arrives, in the order of
        the packets: the events that arrived before the ack have been handed
        to the sink already, the ones after it not yet.
        """
        answered: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def callback(*args: Any) -> None:
            answer = args[0] if args else None
            if on_answer is not None:
                on_answer(answer)
            if not answered.done():
                answered.set_result(answer)

        with map_exceptions(event):
            await self._client.emit(event, data, callback=callback)
        try:
            async with asyncio.timeout(timeout):
                return await answered
        except TimeoutError:
            raise RequestTimeoutError(f"{event}: no answer in time") from None

    async def emit(self, event: str, data: Any) -> None:
        """Send an event without waiting for an answer."""
        with map_exceptions(event):
            await self._client.emit(event, data)

    async def close(self) -> None:
        """Disconnect, never raising: used on every path out."""
        self._closing = True
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await self._client.disconnect()
        with contextlib.suppress(Exception):
            # The Engine.IO read loop, not AsyncClient.wait(): that one always
            # sleeps 1 s more (for its own reconnect task, which is off here).
            async with asyncio.timeout(5):
                await self._client.eio.wait()
