"""The plain-WebSocket bridge (protocol section 1).

A WebSocket upgrade on the Socket.IO path without ``EIO`` in the query
string lands here and speaks JSON text frames, so wscat, a browser's native
WebSocket or any language without a Socket.IO client can use the protocol
with the same rules, limits and rooms. Bridge sockets are in the hub's
registry like any other; they are reached by direct sends instead of
python-socketio's rooms.
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
    ack_frame,
    event_frame,
)

from .hub import Hub
from .screening import IngressScreen
from .validation import parse_model

__all__ = ["BridgeLink", "serve_bridge"]

log = logging.getLogger(__name__)

OUTBOX_LIMIT = 10_000
"""Frames waiting for a slow bridge client before it is disconnected."""


class BridgeLink:
    """A bridge socket as the hub sees it: frames through a bounded outbox."""

    via_fanout = False
    transport = "bridge"

    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket
        self._outbox: asyncio.Queue[str | None] = asyncio.Queue(OUTBOX_LIMIT)
        self.closed = asyncio.Event()

    def _put(self, frame: dict[str, Any]) -> None:
        if self.closed.is_set():
            return
        try:
            self._outbox.put_nowait(json.dumps(frame, separators=(",", ":")))
        except asyncio.QueueFull:
            # A client this far behind cannot catch up; closing beats unbounded memory.
            log.warning("bridge client too slow; disconnecting")
            self._close_now()

    async def send(self, event: str, data: Any) -> None:
        """Queue ``{"event", "data"}`` for the client."""
        self._put(event_frame(event, data))

    async def send_ack(self, ack_id: int, data: Any) -> None:
        """Queue ``{"event": "ack", "id", "data"}`` for the client."""
        self._put(ack_frame(ack_id, data))

    async def join(self, room: str) -> None:
        """Nothing to do: bridge membership lives in the hub's registry."""

    async def leave(self, room: str) -> None:
        """Nothing to do: bridge membership lives in the hub's registry."""

    async def close(self) -> None:
        """Close after the frames already queued (an error explaining why, say)."""
        if not self.closed.is_set():
            try:
                self._outbox.put_nowait(None)
            except asyncio.QueueFull:
                self._close_now()

    def _close_now(self) -> None:
        while not self._outbox.empty():
            self._outbox.get_nowait()
        self._outbox.put_nowait(None)

    async def write_forever(self) -> None:
        """Send queued frames in order until closed."""
        try:
            while (text := await self._outbox.get()) is not None:
                await self._websocket.send_text(text)
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
    hub: Hub, screen: IngressScreen, scope: Scope, receive: Receive, send: Send
) -> None:
    """Run one bridge connection from upgrade to close: ``screen`` first, then ``hub``."""
    websocket = WebSocket(scope, receive, send)
    await websocket.accept()
    link = BridgeLink(websocket)
    socket_id = f"bridge-{uuid.uuid4().hex}"
    try:
        connection = hub.admit(socket_id, link)
    except ProtocolError as error:
        hub.stats.record_error(error.code)
        await websocket.send_text(json.dumps(event_frame(ControlEvent.ERROR, error.to_wire())))
        await websocket.close(1013)  # try again later
        return
    writer = asyncio.create_task(link.write_forever())
    limit = hub.settings.max_message_size_bytes
    try:
        while not link.closed.is_set():
            message = await websocket.receive()
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
        await link.close()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(link.closed.wait(), timeout=1.0)
        writer.cancel()
