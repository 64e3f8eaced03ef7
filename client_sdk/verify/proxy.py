"""A loopback TCP proxy for fault injection: cut, black-hole, delay or refuse connections.

``intraday-live verify`` puts its subscribers behind it, and the test suite
its clients. The client under test connects to the proxy's URL; the proxy
forwards bytes to the real server. Faults act at the TCP level, where the
network fails:

- :meth:`TcpProxy.cut` closes every current connection (RST by default, or FIN);
- :meth:`TcpProxy.blackhole` keeps sockets open but forwards nothing in either
  direction (a dead route, a frozen NAT entry), for current and new connections;
- :meth:`TcpProxy.refuse` closes new connections as soon as they are accepted
  (RST), or answers them with an HTTP error status and closes them (a load
  balancer with no server behind it);
- :meth:`TcpProxy.delay` holds every chunk, both ways, for a while before
  forwarding it (latency; the order and the throughput are kept);
- :meth:`TcpProxy.restore` ends the black hole, the delay and the refusal.

``accepted`` counts every TCP connection that reached the proxy, refused ones
included, so a test can count connection attempts. Note that aiohttp (under
python-engineio) retries an idempotent request once on a fresh connection
when the first one is reset, so one client attempt refused with RST is two
TCP connections; refused with an HTTP status it is one.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from types import TracebackType
from typing import Self

__all__ = ["TcpProxy"]

_CHUNK = 65_536


class _Pair:
    """One proxied connection: the client's side and the server's side."""

    def __init__(self, downstream: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> None:
        self.downstream = downstream
        self.upstream = upstream
        self.pumps: list[asyncio.Task[None]] = []

    def close(self, *, reset: bool) -> None:
        for writer in (self.downstream, self.upstream):
            _close(writer, reset=reset)


def _close(writer: asyncio.StreamWriter, *, reset: bool) -> None:
    if writer.transport.is_closing():
        return
    if reset:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
    else:
        writer.close()


class TcpProxy:
    """Forward ``127.0.0.1:<port>`` to ``target_host:target_port``, with faults on demand.

    Use it with ``async with`` (or :meth:`start` and :meth:`close`).
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.accepted = 0
        """TCP connections accepted so far (refused ones included)."""
        self._server: asyncio.Server | None = None
        self._pairs: set[_Pair] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._refusing = False
        self._refuse_status: int | None = None
        self._delay = 0.0
        self._accepted_changed = asyncio.Condition()
        self._handlers: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    @property
    def port(self) -> int:
        """The port the proxy listens on."""
        assert self._server is not None, "start() the proxy first"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: give this to the client."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def connections(self) -> int:
        """Connections currently forwarded (or held)."""
        return len(self._pairs)

    async def wait_accepted(self, count: int, timeout: float = 5.0) -> None:
        """Wait until ``accepted`` reaches ``count``.

        Raises:
            TimeoutError: not within ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout), self._accepted_changed:
            await self._accepted_changed.wait_for(lambda: self.accepted >= count)

    async def cut(self, *, reset: bool = True) -> None:
        """Close every current connection, both sides: RST (``reset``) or FIN."""
        pairs, self._pairs = list(self._pairs), set()
        for pair in pairs:
            pair.close(reset=reset)
        for pair in pairs:
            for pump in pair.pumps:
                pump.cancel()
            await asyncio.gather(*pair.pumps, return_exceptions=True)

    def blackhole(self) -> None:
        """Stop forwarding in both directions; sockets stay open."""
        self._flowing.clear()

    def refuse(self, refusing: bool = True, *, status: int | None = None) -> None:
        """While ``refusing``, close new connections at once: with RST, or after
        answering their request head with HTTP ``status`` (503 ...)."""
        self._refusing = refusing
        self._refuse_status = status

    def delay(self, seconds: float) -> None:
        """Forward every chunk ``seconds`` after it was read, in both directions."""
        self._delay = max(0.0, seconds)

    def restore(self) -> None:
        """Forward again, without delay, and accept new connections."""
        self._refusing = False
        self._delay = 0.0
        self._flowing.set()

    async def close(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
        await self.cut()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        async with self._accepted_changed:
            self._accepted_changed.notify_all()
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            if not self._refusing:
                await self._forward(reader, writer)
            elif self._refuse_status is None:
                _close(writer, reset=True)
            else:
                await self._answer(reader, writer, self._refuse_status)
        finally:
            self._handlers.discard(task)

    @staticmethod
    async def _answer(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: int
    ) -> None:
        # Read the request head first: closing with unread input would send RST.
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            async with asyncio.timeout(5):
                await reader.readuntil(b"\r\n\r\n")
            writer.write(
                f"HTTP/1.1 {status} Refused\r\nContent-Length: 0\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            await writer.drain()
        _close(writer, reset=False)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            _close(writer, reset=True)
            return
        pair = _Pair(writer, up_writer)
        self._pairs.add(pair)
        pair.pumps = [
            asyncio.create_task(self._pump(reader, up_writer, pair)),
            asyncio.create_task(self._pump(up_reader, writer, pair)),
        ]
        try:
            await asyncio.gather(*pair.pumps, return_exceptions=True)
        finally:
            self._pairs.discard(pair)
            pair.close(reset=False)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pair: _Pair
    ) -> None:
        # Chunks wait here until due: a delay adds latency without serializing
        # the reads behind each chunk's wait.
        due: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(maxsize=16)  # flow control kept
        sender = asyncio.create_task(self._send_when_due(due, writer))
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await reader.read(_CHUNK)
                # A black hole holds what was read (and so, through TCP flow
                # control, everything behind it) until restore().
                await self._flowing.wait()
                await due.put((loop.time() + self._delay, data))
                if not data:
                    break
            await sender
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            sender.cancel()
            # One side is gone: so is the other (as a real peer would see it).
            pair.close(reset=False)

    @staticmethod
    async def _send_when_due(
        due: asyncio.Queue[tuple[float, bytes]], writer: asyncio.StreamWriter
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                when, data = await due.get()
                if when > loop.time():
                    await asyncio.sleep(when - loop.time())
                if not data:
                    return
                writer.write(data)
                await writer.drain()
        except OSError:
            return
