"""The plain-WebSocket bridge (protocol section 1).

A WebSocket upgrade on the Socket.IO path without ``EIO`` in the query
string lands here and speaks JSON text frames, so wscat, a browser's native
WebSocket or any language without a Socket.IO client can use the protocol
with the same rules, limits and rooms. Bridge sockets are in the hub's
registry like any other, and reached by the same fan-out.

The bridge applies the rules Engine.IO applies to its own WebSockets: the
``Origin`` check of ``cors_origins`` (without it a foreign page could open a
socket with the visitor's network position, cross-site WebSocket hijacking),
a heartbeat (WebSocket pings, set on uvicorn by ``ReferenceServer`` with
``ping_interval_ms`` and ``ping_timeout_ms``) and a bound on what waits to
be written (``max_queued_messages_per_socket``, ``max_queued_bytes_per_socket``), all
kept by the socket's :class:`~.outbox.Outbox` like a Socket.IO socket's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any

from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from client_sdk.protocol import (
    BridgeFrame,
    ControlEvent,
    ErrorCode,
    ProtocolError,
    event_frame,
)

from ..config import ServerSettings
from ..hub import Hub
from ..screening import IngressScreen
from ..stats import ServerStats
from ..validation import parse_model
from .codecs import BridgeCodec
from .message import WireLike
from .outbox import Outbox, OutboxLink, OutboxPolicy
from .socketio_server import outbox_policy
from .uvicorn_server import wire_of

__all__ = ["BridgeLink", "origin_allowed", "serve_bridge"]

log = logging.getLogger(__name__)

POLICY_VIOLATION = 1008
"""WebSocket close code for a client closed for what it did (too slow)."""


def origin_allowed(settings: ServerSettings, origin: str | None) -> bool:
    """The rule python-engineio applies to ``cors_allowed_origins``, for the bridge.

    No ``Origin`` (not a browser) passes; an empty list turns the check off;
    otherwise the origin must be listed exactly.
    """
    if not origin or not settings.cors_origins:
        return True
    return origin in settings.cors_origins


class BridgeLink(OutboxLink):
    """A bridge socket as the hub sees it: frames through its :class:`~.outbox.Outbox`."""

    transport = "bridge"

    def __init__(
        self,
        websocket: WebSocket,
        settings: ServerSettings,
        stats: ServerStats | None = None,
        *,
        policy: OutboxPolicy | None = None,
        wire: WireLike | None = None,
    ) -> None:
        self._websocket = websocket
        self._stats = stats
        self.outbox = Outbox(
            BridgeCodec(settings.max_message_size_bytes), policy or outbox_policy(settings)
        )
        if wire is not None:
            self.outbox.wire = wire
        self.outbox.on_too_slow = self._too_slow
        self.socket_id = ""
        self.closed = asyncio.Event()
        self.too_slow = False

    def _too_slow(self, messages: int, size: int) -> None:
        # A client this far behind cannot catch up; closing beats unbounded
        # memory. The connection ends now, not after the blocked send.
        log.warning(
            "disconnecting %s: too slow (%d frames, %d bytes waiting to be written)",
            self.socket_id,
            messages,
            size,
        )
        if self._stats is not None:
            self._stats.record_disconnect("too_slow")
        self.too_slow = True
        self.outbox.put_nowait(None)
        self.closed.set()  # wakes the reader, which ends the connection

    async def join(self, room: str) -> None:
        """Nothing to do: bridge membership lives in the hub's registry."""

    async def leave(self, room: str) -> None:
        """Nothing to do: bridge membership lives in the hub's registry."""

    async def close(self) -> None:
        """Close after the frames already handed over (an error explaining why, say)."""
        self.outbox.flush()  # gathered messages are due before the close
        if not self.closed.is_set() and not self.outbox.ended:
            self.outbox.end()
            self.outbox.put_nowait(None)

    async def drop(self) -> None:
        """Close after the frames already handed over (the bridge has no kick to leave out)."""
        await self.close()

    async def write_forever(self) -> None:
        """The outbox's writer: frames in order until the end."""
        try:
            while (frames := await self.outbox.get()) is not None:
                await self._websocket.send_text(frames.text())
            self.closed.set()
            await self._websocket.close(1000)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass
        finally:
            self.closed.set()


def _frame_id(raw: Any) -> int | None:
    frame_id = raw.get("id") if isinstance(raw, dict) else None
    if isinstance(frame_id, int) and not isinstance(frame_id, bool) and 0 <= frame_id <= 2**53:
        return frame_id
    return None


async def serve_bridge(
    hub: Hub,
    screen: IngressScreen,
    scope: Scope,
    receive: Receive,
    send: Send,
    policy: OutboxPolicy | None = None,
) -> None:
    """Run one bridge connection from upgrade to close: ``screen`` first, then ``hub``.

    ``policy``: the server's outbox limits (and its count of direct writes).
    """
    websocket = WebSocket(scope, receive, send)
    origin = websocket.headers.get("origin")
    if not origin_allowed(hub.settings, origin):
        # Closing before accepting answers the upgrade with HTTP 403, as
        # Engine.IO refuses a foreign origin before any protocol is spoken.
        hub.stats.record_error()
        log.debug("bridge upgrade refused: origin %r is not in cors_origins", origin)
        await websocket.close(POLICY_VIOLATION)
        return
    await websocket.accept()
    link = BridgeLink(websocket, hub.settings, hub.stats, policy=policy, wire=wire_of(send))
    socket_id = f"bridge-{uuid.uuid4().hex}"
    link.socket_id = socket_id
    try:
        connection = await hub.admit(socket_id, link)
    except ProtocolError as error:
        hub.stats.record_error(error.code)
        await websocket.send_text(json.dumps(event_frame(ControlEvent.ERROR, error.to_wire())))
        await websocket.close(1013)  # try again later
        return
    writer = asyncio.create_task(link.write_forever())
    closed = asyncio.create_task(link.closed.wait())
    limit = hub.settings.max_message_size_bytes
    try:
        while not link.closed.is_set():
            receiving = asyncio.ensure_future(websocket.receive())
            await asyncio.wait({receiving, closed}, return_when=asyncio.FIRST_COMPLETED)
            if not receiving.done():
                # Closed by the server (a kick, too slow): stop reading now.
                receiving.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await receiving
                break
            message = receiving.result()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            raw_size = len(text) if text is not None else len(message.get("bytes") or b"")
            if (text is None or not text.startswith("{")) and not await screen.passes(
                connection, raw_size, None
            ):
                continue  # a flood of refusable frames still meets the rate limit
            if text is None:
                not_text = ProtocolError(ErrorCode.INVALID_MESSAGE, "send JSON text frames")
                await hub.refuse(connection, not_text, None)
                continue
            size = len(text) if text.isascii() else len(text.encode())
            raw: Any = None
            if size <= limit:
                try:
                    raw = json.loads(text)
                except ValueError:
                    not_json = ProtocolError(ErrorCode.INVALID_MESSAGE, "a frame must be JSON")
                    await hub.refuse(connection, not_json, None)
                    continue
            frame_id = _frame_id(raw)
            if not await screen.passes(connection, size, frame_id):
                continue
            try:
                frame = parse_model(BridgeFrame, raw, "frame")
            except ProtocolError as error:
                await hub.refuse(connection, error, frame_id)
                continue
            args = [frame.data] if frame.data is not None else []
            await hub.dispatch(connection, frame.event, args, frame.id)
    except WebSocketDisconnect:
        pass
    finally:
        hub.forget(socket_id)
        closed.cancel()
        if link.too_slow:
            # Its writer is stuck in a send to a client that does not read.
            writer.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(websocket.close(POLICY_VIOLATION), timeout=1.0)
        else:
            await link.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(link.closed.wait(), timeout=1.0)
        writer.cancel()
