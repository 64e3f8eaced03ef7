"""uvicorn and websockets as the server runs them: the only module that reads their insides.

Three jobs, all about uvicorn (its server, its sans-I/O WebSocket protocol)
and the websockets library under it; no other module of the server touches
their insides.

**Compression with a threshold.** uvicorn (through websockets) compresses
every frame of a connection that negotiated permessage-deflate, which for the
protocol's few-hundred-byte envelopes roughly doubles the server's CPU per
delivery and buys little. RFC 7692 lets a sender leave any message
uncompressed (RSV1 clear), which is what Node's ``ws`` does below its
threshold; :class:`ThresholdDeflate` does the same below
``compression_threshold_bytes``. Skipping a message leaves the compressor
untouched, so context takeover stays valid for the next compressed one. A
fragmented message is compressed whole. :func:`websocket_protocol` gives
uvicorn its WebSocket protocol class with that extension
(``uvicorn.Config(ws=...)``); everything else is uvicorn's.

**The wire.** :class:`Wire` is what an :class:`~.outbox.Outbox` writes a
prebuilt frame through when its writer is idle (:mod:`.outbox`), and what it
asks how many bytes the transport still holds (the bound counts them).
:class:`WebSocketIndex` finds the uvicorn protocol behind an Engine.IO
session (recorded by :class:`~.guard.EngineIOGuard` as each WebSocket opens:
in the ASGI scope for a direct WebSocket, by session id for an upgrade).

**The drain.** :class:`DrainingServer` is uvicorn's server with the
protocol's graceful shutdown (it overrides uvicorn's ``_wait_tasks_to_complete``
and reads ``server_state.connections``; checked with uvicorn 0.55,
``tests/server/test_shutdown.py`` fails if it changes).

What is read of uvicorn and websockets (checked with uvicorn 0.55 and
websockets 17.4; ``tests/server/test_outbox_writes.py`` fails if it changes):
``WebSocketsSansIOProtocol`` as the ``__self__`` of the ASGI ``send``, its
``transport``, ``conn`` (``state``, ``extensions``), ``writable`` (an
``asyncio.Event`` cleared while uvicorn's flow control pauses writing),
``handshake_complete``, ``initial_response``, ``close_sent`` and
``disconnected``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import zlib
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from types import FrameType
from typing import Any, Final, Protocol
from urllib.parse import parse_qs

import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.extensions.base import Extension
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import CONT, CTRL_OPCODES, Frame
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import ExtensionParameter

from .frames import MessageFrames

__all__ = [
    "SCOPE_KEY",
    "SHUTDOWN_CLOSE_BOUND",
    "DrainingServer",
    "Drains",
    "ThresholdDeflate",
    "ThresholdDeflateFactory",
    "WebSocketIndex",
    "Wire",
    "frame_for",
    "websocket_protocol",
    "wire_of",
]


class ThresholdDeflate(PerMessageDeflate):
    """permessage-deflate that sends single-frame messages under ``threshold`` bytes as they are.

    Its zlib objects are made when first used, not when the connection opens:
    most connections never send or receive a message over the threshold, and
    the two objects, made at once, held about 30 KiB of every idle connection.
    """

    def __init__(self, *args: Any, threshold: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.threshold = threshold
        self._plain = False
        # PerMessageDeflate made them; __getattr__ makes them again on first use.
        self.__dict__.pop("encoder", None)
        self.__dict__.pop("decoder", None)

    def __getattr__(self, name: str) -> Any:
        # Only reached for a missing attribute: the codecs before their first use.
        if name == "encoder" and not self.local_no_context_takeover:
            settings = self.compress_settings
            self.encoder = zlib.compressobj(wbits=-self.local_max_window_bits, **settings)
            return self.encoder
        if name == "decoder" and not self.remote_no_context_takeover:
            self.decoder = zlib.decompressobj(wbits=-self.remote_max_window_bits)
            return self.decoder
        raise AttributeError(name)

    def encode(self, frame: Frame) -> Frame:
        """Compress ``frame``, unless it is a whole message under the threshold."""
        if frame.opcode in CTRL_OPCODES:
            return frame
        if frame.opcode is not CONT:
            self._plain = frame.fin and len(frame.data) < self.threshold
        if self._plain:
            return frame  # RSV1 stays clear: an uncompressed message (RFC 7692, 6.1)
        return super().encode(frame)


class ThresholdDeflateFactory(ServerPerMessageDeflateFactory):
    """Negotiates permessage-deflate as websockets does, with :class:`ThresholdDeflate`."""

    def __init__(self, threshold: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.threshold = threshold

    def process_request_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> tuple[list[ExtensionParameter], PerMessageDeflate]:
        response, negotiated = super().process_request_params(params, accepted_extensions)
        extension = ThresholdDeflate(
            negotiated.remote_no_context_takeover,
            negotiated.local_no_context_takeover,
            negotiated.remote_max_window_bits,
            negotiated.local_max_window_bits,
            self.compress_settings,
            threshold=self.threshold,
        )
        return response, extension


def websocket_protocol(threshold: int) -> type[WebSocketsSansIOProtocol]:
    """uvicorn's sans-I/O WebSocket protocol, compressing messages of ``threshold`` bytes up."""

    class ThresholdWebSocketProtocol(WebSocketsSansIOProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if self.config.ws_per_message_deflate:
                # uvicorn's own settings (12-bit windows, memLevel 5), our extension,
                # and no context takeover from server to client: each compressed
                # message starts afresh, so one compression serves every socket
                # (frames.MessageFrames) and no compressor lives between messages.
                factory = ThresholdDeflateFactory(
                    threshold,
                    server_no_context_takeover=True,
                    server_max_window_bits=12,
                    client_max_window_bits=12,
                    compress_settings={"memLevel": 5},
                )
                self.conn = ServerProtocol(
                    extensions=[factory],
                    max_size=self.config.ws_max_size,
                    logger=logging.getLogger("uvicorn.error"),
                )

    return ThresholdWebSocketProtocol


SCOPE_KEY: Final = "intraday.websocket"
"""Where the guard leaves a direct WebSocket's uvicorn protocol in its ASGI scope."""


class Wire:
    """One uvicorn WebSocket, seen by the outbox that writes to it."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol: WebSocketsSansIOProtocol) -> None:
        self._protocol = protocol

    def ready(self) -> bool:
        """Open, not paused by flow control, and holding nothing unsent: a frame goes out now."""
        protocol = self._protocol
        transport = protocol.transport
        return bool(
            protocol.handshake_complete
            and protocol.initial_response is None
            and not protocol.close_sent
            and not protocol.disconnected
            and protocol.writable.is_set()
            and protocol.conn.state is State.OPEN
            and not transport.is_closing()
            and transport.get_write_buffer_size() == 0
        )

    def buffered(self) -> int:
        """Bytes the transport holds, not yet handed to the kernel."""
        transport = self._protocol.transport
        return 0 if transport.is_closing() else int(transport.get_write_buffer_size())

    def write(self, frames: MessageFrames) -> bool:
        """Write the frame of ``frames`` this connection takes; ``False`` if none fits it."""
        frame = frame_for(frames, self._protocol.conn.extensions)
        if frame is None:
            return False
        self._protocol.transport.write(frame)
        return True

    async def drained(self) -> None:
        """Return once uvicorn's flow control lets writes through again."""
        await self._protocol.writable.wait()


def frame_for(frames: MessageFrames, extensions: Sequence[Any]) -> bytes | None:
    """The frame for a connection with these extensions; ``None``: its own compressor only."""
    if not extensions:
        return frames.plain()
    if len(extensions) != 1 or not isinstance(extensions[0], ThresholdDeflate):
        return None
    deflate = extensions[0]
    if len(frames) < deflate.threshold:
        return frames.plain()
    if not deflate.local_no_context_takeover:
        return None  # compressed against this connection's history
    return frames.deflated(deflate.local_max_window_bits, deflate.compress_settings)


def wire_of(send: Any) -> Wire | None:
    """The wire behind an ASGI WebSocket ``send`` (``None`` under another server)."""
    protocol = getattr(send, "__self__", None)
    return Wire(protocol) if isinstance(protocol, WebSocketsSansIOProtocol) else None


class WebSocketIndex:
    """Which uvicorn WebSocket protocol carries each Engine.IO session."""

    def __init__(self) -> None:
        self._upgrades: dict[str, WebSocketsSansIOProtocol] = {}

    def opened(self, scope: MutableMapping[str, Any], send: Any) -> str | None:
        """Record the protocol behind ``send``; the session id to :meth:`closed` for an upgrade."""
        protocol = getattr(send, "__self__", None)
        if not isinstance(protocol, WebSocketsSansIOProtocol):
            return None  # another server or WebSocket implementation: no direct writes
        scope[SCOPE_KEY] = protocol
        query = scope.get("query_string", b"")
        sids = parse_qs(query.decode("latin-1") if isinstance(query, bytes) else "").get("sid")
        if not sids:
            return None
        sid: str = sids[0]
        self._upgrades[sid] = protocol
        return sid

    def closed(self, sid: str) -> None:
        """Forget the upgraded session ``sid``."""
        self._upgrades.pop(sid, None)

    def wire(self, eio_sid: str, environ: Mapping[str, Any] | None) -> Wire | None:
        """The wire of ``eio_sid`` (its connect ``environ`` for a direct WebSocket)."""
        protocol = self._upgrades.get(eio_sid)
        if protocol is None and environ is not None:
            scope = environ.get("asgi.scope")
            found = scope.get(SCOPE_KEY) if isinstance(scope, MutableMapping) else None
            protocol = found if isinstance(found, WebSocketsSansIOProtocol) else None
        return Wire(protocol) if protocol is not None else None


SHUTDOWN_CLOSE_BOUND: Final = 2.0
"""Seconds after the drain within which connections must close before they are aborted."""

log = logging.getLogger("reference_server")


class Drains(Protocol):
    """What :class:`DrainingServer` stops first: the application's own shutdown."""

    async def shutdown(self) -> None:
        """Notify every client, let them drain, disconnect them."""
        ...


class DrainingServer(uvicorn.Server):
    """uvicorn's server with the protocol's graceful shutdown on SIGTERM/SIGINT.

    The first signal sends ``system:maintenance`` to every client, waits for
    the drain, disconnects them and only then lets uvicorn stop; the process
    exits 0. A second signal forces the exit.
    """

    def __init__(self, config: uvicorn.Config, app: Drains, *, signals: bool) -> None:
        super().__init__(config)
        self._intraday = app
        self._signals = signals
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    async def startup(self, sockets: Any = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets=sockets)
        if self.started:
            self.listening.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if not self._signals:
            yield
            return
        with super().capture_signals():
            yield

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Deliberately not recorded in _captured_signals: uvicorn would re-raise
        # it after shutdown and the process would die of the signal, not exit 0.
        if self._draining is not None or self._loop is None:
            self.should_exit = True
            self.force_exit = self._draining is not None
            return
        log.info("received %s: draining", signal.Signals(sig).name)
        self._loop.call_soon_threadsafe(self._begin_drain)

    def _begin_drain(self) -> None:
        self._draining = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        try:
            await self._intraday.shutdown()
        finally:
            self.should_exit = True

    async def _wait_tasks_to_complete(self) -> None:
        # uvicorn waits timeout_graceful_shutdown (5 s) for every connection to
        # close, then cancels what is left and logs it at ERROR. A client that
        # stopped reading never closes: its WebSocket's writer waits on it. By
        # now the drain has told every client and closed every session, so a
        # connection still open after SHUTDOWN_CLOSE_BOUND is stuck: abort its
        # transport, which ends its tasks (and the API requests finish first).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SHUTDOWN_CLOSE_BOUND
        # uvicorn offers no event for "the last connection closed": poll its set.
        while self.server_state.connections and loop.time() < deadline and not self.force_exit:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        stuck = list(self.server_state.connections)
        if stuck:
            log.info("shutdown: aborting %d connection(s) that did not close", len(stuck))
            for connection in stuck:
                transport = getattr(connection, "transport", None)
                if transport is not None:
                    transport.abort()
        await super()._wait_tasks_to_complete()

    async def stop(self) -> None:
        """Drain and stop from code (what a signal does)."""
        if self._draining is None:
            self._begin_drain()
        assert self._draining is not None
        await self._draining
