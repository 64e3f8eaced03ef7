"""Wire-level peers: a Socket.IO socket and a plain-WebSocket bridge socket.

Both record every server event in arrival order and let a check wait for a
condition on what arrived, with a timeout; neither interprets anything, so a
check sees exactly what the server sent. A ``requires_ack`` envelope is
acknowledged ``{"received": true}`` (after ``ack_delay`` seconds, so that a
check can tell its own round trip in the server's latency stats).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import aiohttp

from .._transport import SocketIOTransport
from ..exceptions import ConnectionLostError, RequestTimeoutError
from .failures import CheckFailure, show

__all__ = ["BridgePeer", "Inbox", "Peer", "SocketPeer"]

Where = Callable[[Any], bool]


class Inbox:
    """Events as they arrived, and waiting on a condition over them."""

    def __init__(self) -> None:
        self.items: list[tuple[str, Any]] = []
        self._waiters: set[asyncio.Future[None]] = set()

    def add(self, event: str, data: Any) -> None:
        """Record one event (synchronously, so arrival order is kept) and wake waiters."""
        self.items.append((event, data))
        self.poke()

    def poke(self) -> None:
        """Wake every waiter to re-evaluate its condition."""
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    def of(self, event: str | None = None, where: Where | None = None) -> list[Any]:
        """The data of every event named ``event`` (any name if ``None``) satisfying ``where``."""
        return [
            data
            for name, data in self.items
            if (event is None or name == event) and (where is None or where(data))
        ]

    async def wait_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``condition()`` holds; ``False`` if it still does not after ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not condition():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.add(waiter)
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter, remaining)
            finally:
                self._waiters.discard(waiter)
        return True


def probe_is(probe: str) -> Where:
    """A ``where`` that picks envelopes whose payload carries ``contract_probe == probe``."""

    def matches(envelope: Any) -> bool:
        data = envelope.get("data") if isinstance(envelope, Mapping) else None
        return isinstance(data, Mapping) and data.get("contract_probe") == probe

    return matches


class Peer:
    """What checks need from any connection: requests, events, waiting, closing."""

    transport_name = "peer"

    def __init__(self, label: str, *, request_timeout: float, event_timeout: float) -> None:
        self.label = label
        self.inbox = Inbox()
        self.lost = asyncio.Event()
        self.lost_reason: str | None = None
        self.ack_delay = 0.0
        self.subscriptions: list[str] = []
        self.identity: dict[str, Any] | None = None
        self.request_timeout = request_timeout
        self.event_timeout = event_timeout

    def _mark_lost(self, reason: str) -> None:
        self.lost_reason = reason
        self.lost.set()
        self.inbox.poke()

    async def call(self, event: str, data: Any) -> Any:
        """Send ``event`` with an ack request; the raw ack.

        Raises:
            CheckFailure: no ack in time, or the connection was lost.
        """
        raise NotImplementedError

    async def emit(self, event: str, data: Any) -> None:
        """Send ``event`` without asking for an ack."""
        raise NotImplementedError

    async def close(self) -> None:
        """Disconnect, never raising."""
        raise NotImplementedError

    def _no_ack(self, event: str, data: Any, why: str) -> CheckFailure:
        lost = f"; connection lost ({self.lost_reason})" if self.lost.is_set() else ""
        return CheckFailure(
            f"an ack to {event!r} within {self.request_timeout:g} s",
            sent=data,
            received=f"{why}{lost}",
        )

    async def request(self, event: str, data: Any) -> dict[str, Any]:
        """Send a request that must succeed; its ack.

        Raises:
            CheckFailure: no ack, or an ack other than ``{"success": true, ...}``.
        """
        ack = await self.call(event, data)
        if not isinstance(ack, dict) or ack.get("success") is not True:
            raise CheckFailure(f"{event!r} to succeed", sent=data, received=ack)
        if event == "authenticate":
            self.identity = ack
        if event in ("subscribe", "unsubscribe") and isinstance(ack.get("subscriptions"), list):
            self.subscriptions = [r for r in ack["subscriptions"] if isinstance(r, str)]
        return ack

    def received(self, event: str | None = None, where: Where | None = None) -> list[Any]:
        """The data of every event received so far named ``event`` and satisfying ``where``."""
        return self.inbox.of(event, where)

    def summary(self, limit: int = 8) -> str:
        """What this peer received, for a failure message."""
        names = [name for name, _ in self.inbox.items]
        last = self.inbox.items[-limit:]
        lost = f"; connection lost ({self.lost_reason})" if self.lost.is_set() else ""
        return f"{self.label} received {len(names)} events {show(names, 300)}{lost}; last: " + show(
            last, 900
        )

    async def wait_for(
        self,
        event: str,
        *,
        where: Where | None = None,
        count: int = 1,
        timeout: float | None = None,
        expected: str | None = None,
        sent: Any = None,
    ) -> list[Any]:
        """Wait until ``count`` events named ``event`` satisfying ``where`` have arrived.

        Raises:
            CheckFailure: not within ``timeout`` (by default ``event_timeout``).
        """
        wait = self.event_timeout if timeout is None else timeout
        if not await self.inbox.wait_until(lambda: len(self.inbox.of(event, where)) >= count, wait):
            what = expected or f"{count} {event!r} event(s) at {self.label} within {wait:g} s"
            if sent is None:
                raise CheckFailure(what, received=self.summary())
            raise CheckFailure(what, sent=sent, received=self.summary())
        return self.inbox.of(event, where)

    async def wait_lost(self, timeout: float) -> bool:
        """Wait until the server closes the connection; ``False`` if it is still open."""
        return await self.inbox.wait_until(self.lost.is_set, timeout)

    def _ack_for(self, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("requires_ack") is True:
            return {"received": True}
        return None


class SocketPeer(Peer):
    """A Socket.IO socket, through the SDK's typed python-socketio adapter."""

    def __init__(self, label: str, *, request_timeout: float, event_timeout: float) -> None:
        super().__init__(label, request_timeout=request_timeout, event_timeout=event_timeout)
        self._transport = SocketIOTransport(self._sink, self._mark_lost)
        self.transport_name = "socket.io"

    async def _sink(self, event: str, data: Any) -> Any:
        self.inbox.add(event, data)
        ack = self._ack_for(data)
        if ack is not None and self.ack_delay > 0:
            await asyncio.sleep(self.ack_delay)
        return ack

    @property
    def sid(self) -> str | None:
        """The socket id the server gave this socket."""
        return self._transport.sid

    @property
    def connected(self) -> bool:
        """Whether the namespace is connected."""
        return self._transport.connected

    async def open(
        self,
        url: str,
        path: str,
        *,
        transports: Sequence[str] = ("websocket",),
        auth: Mapping[str, Any] | None = None,
        timeout: float = 5.0,
    ) -> None:
        """Connect (with a handshake ``auth`` when given).

        Raises:
            ServerError: the handshake was refused with a protocol ERROR.
            ConnectionLostError: refused otherwise, or unreachable.
        """
        await self._transport.open(
            url, path=path, transports=list(transports), headers={}, timeout=timeout, auth=auth
        )
        self.transport_name = self._transport.transport_name or "socket.io"

    async def call(self, event: str, data: Any) -> Any:
        """Send ``event`` with an ack request; the raw ack."""
        try:
            return await self._transport.call(event, data, self.request_timeout)
        except RequestTimeoutError:
            raise self._no_ack(event, data, "no ack") from None
        except ConnectionLostError as exc:
            raise self._no_ack(event, data, f"not connected: {exc}") from None

    async def emit(self, event: str, data: Any) -> None:
        """Send ``event`` without an ack request."""
        try:
            await self._transport.emit(event, data)
        except ConnectionLostError as exc:
            raise CheckFailure(f"to send {event!r}", sent=data, received=str(exc)) from None

    async def close(self) -> None:
        """Disconnect, never raising."""
        await self._transport.close()


class BridgePeer(Peer):
    """A plain-WebSocket bridge socket: JSON text frames, through aiohttp."""

    transport_name = "bridge"

    def __init__(self, label: str, *, request_timeout: float, event_timeout: float) -> None:
        super().__init__(label, request_timeout=request_timeout, event_timeout=event_timeout)
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self.frames: list[Any] = []
        """Every frame received, acks included, parsed when it was JSON."""

    async def open(self, url: str, *, timeout: float = 5.0) -> None:
        """Open the WebSocket (``url`` has no ``EIO`` parameter).

        Raises:
            ConnectionLostError: the upgrade failed.
        """
        self._session = aiohttp.ClientSession()
        try:
            self._ws = await asyncio.wait_for(self._session.ws_connect(url), timeout)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            await self.close()
            raise ConnectionLostError(f"bridge upgrade at {url} failed: {exc!r}") from exc
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._ws is not None
        reason = "bridge closed"
        try:
            async for message in self._ws:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    self.frames.append(message.data)
                    continue
                try:
                    frame = json.loads(message.data)
                except ValueError:
                    self.frames.append(message.data)
                    continue
                self.frames.append(frame)
                self._dispatch(frame)
        except Exception as exc:  # a broken connection ends the read like a close
            reason = f"bridge failed: {exc!r}"
        finally:
            self._mark_lost(f"{reason} (code {self._ws.close_code})")
            for pending in self._pending.values():
                if not pending.done():
                    pending.set_exception(ConnectionLostError("bridge closed"))

    def _dispatch(self, frame: Any) -> None:
        if not isinstance(frame, dict) or not isinstance(frame.get("event"), str):
            return
        if frame["event"] == "ack" and isinstance(frame.get("id"), int):
            pending = self._pending.pop(frame["id"], None)
            if pending is not None and not pending.done():
                pending.set_result(frame.get("data"))
                return
        self.inbox.add(frame["event"], frame.get("data"))

    async def send_text(self, text: str) -> None:
        """Send one raw text frame."""
        if self._ws is None or self._ws.closed:
            raise CheckFailure("an open bridge connection", sent=text, received=self.summary())
        try:
            await self._ws.send_str(text)
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise CheckFailure("to send a frame", sent=text, received=repr(exc)) from None

    async def call(self, event: str, data: Any) -> Any:
        """Send ``{"event", "data", "id"}`` and wait for its ``ack`` frame."""
        frame_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[frame_id] = future
        frame = {"event": event, "data": data, "id": frame_id}
        await self.send_text(json.dumps(frame))
        try:
            return await asyncio.wait_for(future, self.request_timeout)
        except TimeoutError:
            raise self._no_ack(event, frame, "no ack frame") from None
        except ConnectionLostError:
            raise self._no_ack(event, frame, "the bridge closed") from None
        finally:
            self._pending.pop(frame_id, None)

    async def emit(self, event: str, data: Any) -> None:
        """Send ``{"event", "data"}`` without an id."""
        await self.send_text(json.dumps({"event": event, "data": data}))

    async def close(self) -> None:
        """Close the WebSocket and the HTTP session, never raising."""
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 5)
        if self._reader is not None:
            done, _ = await asyncio.wait({self._reader}, timeout=5)
            if not done:
                self._reader.cancel()
        if self._session is not None:
            with contextlib.suppress(Exception):
                await self._session.close()
