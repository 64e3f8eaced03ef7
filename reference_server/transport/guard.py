"""The ASGI guard in front of python-engineio: bad input never becomes a traceback.

python-engineio trusts its framing. Before any authentication, a WebSocket
frame such as ``x`` or an empty one raises out of its read loop ("Exception
in ASGI application" and a dropped socket); ``7`` or ``9hello`` log an ERROR
with a traceback per frame; a polling POST to a session that was just closed
answers HTTP 500 (a ``KeyError``); a POST whose ``Content-Length`` exceeds
the limit makes it close the session and wait for a poll that may never
come, so the request hangs. :class:`EngineIOGuard` wraps the Engine.IO ASGI
application and answers these itself:

- a WebSocket text frame that is not an Engine.IO packet (empty, or not
  starting with a packet type ``0``-``6``) closes the WebSocket quietly
  (code 1002, protocol error);
- a polling POST larger than the transport limit is answered 413, one whose
  payload holds such a packet 400, both with the protocol's error body;
- any exception python-engineio still raises is answered 400 if no response
  has started, never 500;
- a client that goes away while its long-poll GET is pending has ended its
  session: ``abandon`` is told at once, so that its socket is released now
  and not when the heartbeat gives up (``ping_interval + ping_timeout``).

Each is counted (``error_count``) and logged once per connection at DEBUG.
Binary WebSocket frames pass: they are Engine.IO's attachments, and the
Socket.IO layer drops them (the protocol is JSON only).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import socketio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from client_sdk.protocol import ErrorCode, ProtocolError

from ..stats import ServerStats
from .uvicorn_server import WebSocketIndex

__all__ = ["EngineIOGuard", "engineio_asgi_app", "engineio_logger", "is_engineio_packet"]

log = logging.getLogger("reference_server.engineio")


class _ClientMistakes(logging.Filter):
    """python-engineio's own messages are about what clients sent: WARNING at most, no traceback.

    It logs an unknown session id or a bad transport at ERROR (once per kind)
    and a failing handler with a traceback; none of these is the server's
    fault, and a client must not be able to fill the log with tracebacks.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        if record.exc_info:
            kind = record.exc_info[0].__name__ if record.exc_info[0] else "error"
            record.msg = f"{record.getMessage()} ({kind})"
            record.args = None
            record.exc_info, record.exc_text = None, None
        return True


def engineio_asgi_app(server: Any, path: str) -> ASGIApp:
    """python-socketio's ASGI application for ``server`` at ``path`` (to wrap in the guard)."""
    app: ASGIApp = socketio.ASGIApp(server, socketio_path=path.strip("/"))
    return app


def engineio_logger() -> logging.Logger:
    """The logger given to python-engineio: ``reference_server.engineio.lib``, filtered."""
    logger = logging.getLogger("reference_server.engineio.lib")
    # It logs every packet at INFO; only its warnings are worth reading.
    logger.setLevel(logging.WARNING)
    if not any(isinstance(f, _ClientMistakes) for f in logger.filters):
        logger.addFilter(_ClientMistakes())
    return logger


PROTOCOL_ERROR = 1002
"""WebSocket close code for a frame that breaks the protocol."""

_PACKET_TYPES = frozenset("0123456")
_RECORD_SEPARATOR = "\x1e"  # between packets of one polling payload


def is_engineio_packet(text: str, *, polling: bool = False) -> bool:
    """Whether ``text`` starts as an Engine.IO v4 packet (``b`` is base64 binary, polling only)."""
    first = text[:1]
    return first in _PACKET_TYPES or (polling and first == "b")


def _error_body(error: ProtocolError) -> bytes:
    return json.dumps({"success": False, "error": error.to_wire()}).encode()


class EngineIOGuard:
    """Wraps the Engine.IO ASGI app; see the module docstring for what it answers."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        stats: ServerStats,
        websockets: WebSocketIndex | None = None,
        abandon: Callable[[str], None] | None = None,
    ) -> None:
        self._app = app
        self._limit = limit
        self._stats = stats
        self._websockets = websockets
        self._abandon = abandon

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine: no frame of this dispatch lives as long as a WebSocket.
        if scope["type"] == "websocket":
            return self._websocket(scope, receive, send)
        if scope["type"] == "http" and scope.get("method") == "POST":
            return self._post(scope, receive, send)
        if scope["type"] == "http" and scope.get("method") == "GET" and self._abandon:
            return self._poll(scope, receive, send)
        return self._guarded(scope, receive, send)

    # -- WebSocket ------------------------------------------------------------

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        screen = _ScreenedWebSocket(receive, send, self._stats)
        # Room emits write to this WebSocket directly (frame_emit.py); a frame this guard
        # must drop is never written there, as uvicorn then reports a close sent.
        upgrade = self._websockets.opened(scope, send) if self._websockets is not None else None
        try:
            await self._app(scope, screen.receive, screen.send)
        except Exception:
            self._stats.record_error()
            log.debug("Engine.IO WebSocket ended by an error")
        finally:
            if upgrade is not None and self._websockets is not None:
                self._websockets.closed(upgrade)

    # -- polling --------------------------------------------------------------

    async def _poll(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = scope.get("query_string", b"")
        sids = parse_qs(query.decode("latin-1") if isinstance(query, bytes) else "").get("sid")
        if not sids or self._abandon is None:
            await self._guarded(scope, receive, send)
            return
        read = asyncio.Event()

        async def receive_request() -> Message:
            message = await receive()
            read.set()
            return message

        # python-engineio reads the (empty) request, then waits for packets; from
        # then on the only thing ASGI can still tell is that the client left.
        app = asyncio.ensure_future(self._guarded(scope, receive_request, send))
        reading = asyncio.ensure_future(read.wait())
        await asyncio.wait({app, reading}, return_when=asyncio.FIRST_COMPLETED)
        reading.cancel()
        if not app.done():
            gone = asyncio.ensure_future(receive())
            await asyncio.wait({app, gone}, return_when=asyncio.FIRST_COMPLETED)
            if not app.done() and gone.result()["type"] == "http.disconnect":
                log.debug("long-poll client left: ending Engine.IO session %s", sids[0])
                self._abandon(sids[0])
            gone.cancel()
        await app

    async def _post(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared = _content_length(scope)
        if declared is not None and declared > self._limit:
            await self._refuse(send, 413, self._too_large(declared))
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._limit:
                await self._refuse(send, 413, self._too_large(size))
                return
            chunks.append(chunk)
            more = bool(message.get("more_body"))
        body = b"".join(chunks)
        try:
            text = body.decode()
        except UnicodeDecodeError:
            text = None
        if text is None or not all(
            is_engineio_packet(part, polling=True) for part in text.split(_RECORD_SEPARATOR)
        ):
            error = ProtocolError(ErrorCode.INVALID_MESSAGE, "not an Engine.IO payload")
            await self._refuse(send, 400, error)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self._guarded(scope, replay, send)

    def _too_large(self, size: int) -> ProtocolError:
        return ProtocolError(
            ErrorCode.MESSAGE_TOO_LARGE,
            f"request body of {size} bytes exceeds the limit of {self._limit}",
            details={"size": size, "limit": self._limit},
        )

    async def _refuse(self, send: Send, status: int, error: ProtocolError) -> None:
        self._stats.record_error()
        log.debug("Engine.IO request refused (%d): %s", status, error.message)
        body = _error_body(error)
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self._app(scope, receive, tracking_send)
        except Exception:
            # A race python-engineio does not expect (a POST to a session closed
            # a moment ago raises KeyError): the session is gone, say so.
            log.debug("Engine.IO request failed")
            if not started and scope["type"] == "http":
                error = ProtocolError(ErrorCode.INVALID_MESSAGE, "no such Engine.IO session")
                await self._refuse(send, 400, error)
            else:
                self._stats.record_error()


class _ScreenedWebSocket:
    """One Engine.IO WebSocket's ASGI ``receive`` and ``send``, screened.

    A class with slots, not two closures: it lives as long as the WebSocket
    (about 250 bytes less per connection).
    """

    __slots__ = ("_closed", "_receive", "_send", "_stats")

    def __init__(self, receive: Receive, send: Send, stats: ServerStats) -> None:
        self._receive = receive
        self._send = send
        self._stats = stats
        self._closed = False

    async def receive(self) -> Message:
        """The next message; a text frame that is no Engine.IO packet closes the WebSocket."""
        message = await self._receive()
        if message["type"] != "websocket.receive" or self._closed:
            return message
        text = message.get("text")
        if text is None or is_engineio_packet(text):
            return message
        self._closed = True
        self._stats.record_error()
        log.debug("closing an Engine.IO WebSocket: not an Engine.IO packet: %r", text[:40])
        await self._send({"type": "websocket.close", "code": PROTOCOL_ERROR})
        # python-engineio reads this as the client going away and cleans up.
        return {"type": "websocket.disconnect", "code": PROTOCOL_ERROR}

    async def send(self, message: Message) -> None:
        """Send ``message``, unless the guard closed the WebSocket."""
        if self._closed and message["type"] in ("websocket.send", "websocket.close"):
            return  # the guard closed it; python-engineio does not know yet
        await self._send(message)


def _content_length(scope: Scope) -> int | None:
    headers: Any = scope.get("headers") or []
    for name, value in headers:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
