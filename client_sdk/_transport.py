"""The one module of the SDK that touches python-socketio.

A typed adapter over ``socketio.AsyncClient`` with its own reconnection and
SIGINT handling turned off (the SDK owns both), and one seam where its
exceptions become ours. A new adapter (and a new AsyncClient) is made for
every connection attempt, so reconnecting can never stack handlers or tasks.

Every hook into python-socketio and python-engineio is in this module, and
only here. Documented: ``AsyncClient(serializer=...)``, our packet class
(:class:`_Packet`, orjson and a shortcut for plain events). Private:

======================================  ========  =====================================
Private hook                            Of        Why
======================================  ========  =====================================
``AsyncClient._engineio_client_class``  socketio  overridden: makes python-engineio's
                                                  client ours (:class:`_EngineIOClient`)
``AsyncClient._read_loop_websocket``    engineio  overridden, upstream's loop with two
                                                  changes: a plain event (``42[...]``)
                                                  goes to the dispatcher synchronously,
                                                  not through a task of its own; one
                                                  receive timer per connection, not a
                                                  ``wait_for`` per message
``AsyncClient._trigger_event``          engineio  overridden: notes the task started
                                                  for each other message (order)
``AsyncClient._binary_packet``          socketio  read: while it is set, a text packet
                                                  is an attachment, left to it
======================================  ========  =====================================

One upstream behaviour is worked around, not hooked: when a server closes the
WebSocket as soon as it accepted it, python-engineio 4.15.1's connect fails
with a ``TypeError`` decoding the close code; :meth:`SocketIOTransport.open`
turns one raised inside python-engineio into :class:`ConnectionLostError`, as
it does the ``ConnectionError`` upstream would raise.

With the dispatcher's synchronous entry, these took the CPU of the SDK's
unbatched receive under cProfile from 21.6 s to 6.1 s per 20,000 messages
(``bench/sdk_receive.py --profile-client sdk1``). Checked against python-socketio
5.18.1 and python-engineio 4.15.1: the seam test pins the source of the read
loop it replaces and the calls the others rely on, and fails when an upgrade
changes one of them (read the new loop, port the two changes, update the pin).
``tests/sdk/test_transport_seams.py``. At run time our loop is used only over
the loop it was copied from (:data:`READ_LOOP_SHA256`); over any other
python-engineio the client runs upstream's loop, with its task per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import inspect
import json
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any

import aiohttp
import engineio
import engineio.base_client
import engineio.packet
import orjson
import socketio
import socketio.packet

from ._explain import explain
from ._receive_watch import ReceiveWatch
from .exceptions import ConnectionLostError, IntradayError, RequestTimeoutError, ServerError

__all__ = ["READ_LOOP_SHA256", "SocketIOTransport", "explain", "map_exceptions"]

READ_LOOP_SHA256 = "83f5111bf4e5b5248adb777c18307fa04f5d871805acc41a0f4b6f3f5671317a"
"""python-engineio 4.15.1's ``AsyncClient._read_loop_websocket``, which ours replaces."""


def _upstream_read_loop_is_the_one_copied() -> bool:
    # Our loop is upstream's with two changes; over another upstream loop it could
    # end a connection differently, so it is used only over the one it was copied from.
    try:
        source = inspect.getsource(engineio.AsyncClient._read_loop_websocket)
    except (OSError, TypeError):  # no source shipped: cannot tell
        return False
    return hashlib.sha256(source.encode()).hexdigest() == READ_LOOP_SHA256


READ_LOOP_REPLACED = _upstream_read_loop_is_the_one_copied()
"""Whether the client reads WebSockets with our loop (else with python-engineio's own)."""

EventSink = Callable[..., Awaitable[Any]]
"""Receives the server events ``EventTaker`` left, as ``(event, data=None, *more)``; what it
returns is its ack.

It runs in a task of its own per message (python-engineio); its first step
must be synchronous, so that arrival order is kept."""

EventTaker = Callable[[str, Any], bool]
"""Takes a plain server event ``(event, data)`` synchronously, in the read loop, in order;
``False``: not taken, it goes to the :data:`EventSink` instead."""


def _raised_in_engineio(exc: BaseException) -> bool:
    """Whether ``exc`` was raised inside python-engineio's own code."""
    traceback = exc.__traceback__
    if traceback is None:
        return False
    while traceback.tb_next is not None:
        traceback = traceback.tb_next
    module = traceback.tb_frame.f_globals.get("__name__", "")
    return isinstance(module, str) and module.split(".")[0] == "engineio"


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


class _EngineIOClient(engineio.AsyncClient):  # type: ignore[misc]  # python-engineio is untyped
    """python-engineio's client, with a synchronous way in for plain events.

    python-engineio starts a task for every ``message`` (python-socketio's
    handler decodes it there). Over a WebSocket, :attr:`take` is offered each
    plain event first, in the read loop, unless the last task started for a
    message is not done yet: tasks run in the order they were started, so a
    message after one still waiting for its turn waits too, in a task behind
    it, and arrival order holds across both ways (an ack's callback sees
    exactly the events before it taken or handed over). Polling is left as
    it is.
    """

    take: Callable[[str], bool] | None = None
    _started: asyncio.Task[Any] | None = None

    async def _trigger_event(self, event: str, *args: Any, **kwargs: Any) -> Any:
        task = await super()._trigger_event(event, *args, **kwargs)
        if event == "message" and isinstance(task, asyncio.Task):
            self._started = task  # the last message's task: what a taken one must not overtake
        return task

    async def _read_loop_websocket(self) -> None:
        """python-engineio's WebSocket read loop, with two costs per message taken out.

        The same loop as upstream's (its source is pinned in the seam test),
        reading the same packets in the same order and ending the same ways,
        except: a text MESSAGE is offered to :attr:`take` before an engineio
        ``Packet`` is made of it (under the rule of :meth:`_trigger_event`),
        and the receive timeout is one timer for the connection, re-armed when
        it fires, instead of ``asyncio.wait_for`` around every receive (a
        ``Timeout``, a timer handle and its cancellation per message).
        """
        if not READ_LOOP_REPLACED:
            await super()._read_loop_websocket()
            return
        watch = ReceiveWatch(self.ping_interval + self.ping_timeout)
        try:
            while self.state == "connected" and self.write_loop_task:
                p = None
                try:
                    watch.waiting = True
                    watch.since = watch.loop.time()
                    try:
                        p = await self.ws.receive()
                    except asyncio.CancelledError:
                        if watch.expired():
                            raise TimeoutError from None
                        raise
                    finally:
                        watch.waiting = False
                    if not isinstance(p.data, (str, bytes)):  # pragma: no cover
                        self.logger.warning(
                            "Server sent %s packet data %s, aborting",
                            "close"
                            if p.type in [aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING]
                            else str(p.type),
                            str(p.data),
                        )
                        await self.queue.put(None)
                        break  # the connection is broken
                    p = p.data
                except TimeoutError:
                    self.logger.warning("Server has stopped communicating, aborting")
                    await self.queue.put(None)
                    break
                except aiohttp.client_exceptions.ServerDisconnectedError:
                    self.logger.info("Read loop: WebSocket connection was closed, aborting")
                    await self.queue.put(None)
                    break
                except Exception as e:
                    self.logger.info('Unexpected error receiving packet: "%s", aborting', str(e))
                    await self.queue.put(None)
                    break
                if type(p) is str and p[:3] == "42[":  # a MESSAGE holding a plain event
                    take, started = self.take, self._started
                    if take is not None and (started is None or started.done()) and take(p[1:]):
                        continue
                try:
                    pkt = engineio.packet.Packet(encoded_packet=p)
                except Exception as e:  # pragma: no cover
                    self.logger.info('Unexpected error decoding packet: "%s", aborting', str(e))
                    await self.queue.put(None)
                    break
                await self._receive_packet(pkt)
        finally:
            watch.stop()

        if self.write_loop_task:  # pragma: no branch
            self.logger.info("Waiting for write loop task to end")
            await self.write_loop_task
        if self.state == "connected":
            await self._trigger_event("disconnect", self.reason.TRANSPORT_ERROR, run_async=False)
            with contextlib.suppress(ValueError):
                engineio.base_client.connected_clients.remove(self)
            await self._reset()
        self.logger.info("Exiting read loop task")


class _SocketIOClient(socketio.AsyncClient):  # type: ignore[misc]  # python-socketio is untyped
    def _engineio_client_class(self) -> type[_EngineIOClient]:
        return _EngineIOClient


def _cheap_to_inspect(handler: EventSink) -> EventSink:
    # python-socketio calls inspect.iscoroutinefunction on the handler for
    # every event; on a bound method that costs about 0.5 us more than on a
    # partial of its function (it unwraps the method first). Calling either
    # is the same call.
    if inspect.ismethod(handler):
        return functools.partial(handler.__func__, handler.__self__)
    return handler


_OWN_EVENTS = frozenset({"connect", "disconnect", "connect_error"})
"""Events with a handler of their own here (python-socketio would not call ``"*"``)."""


class SocketIOTransport:
    """One Socket.IO connection: open, request, receive, close."""

    def __init__(
        self, sink: EventSink, on_lost: Callable[[str], None], take: EventTaker | None = None
    ) -> None:
        self._client = _SocketIOClient(
            reconnection=False,
            handle_sigint=False,
            logger=False,
            engineio_logger=False,
            serializer=_Packet,
        )
        if take is not None:
            self._take_event = take
            self._client.eio.take = self._take
        self._on_lost = on_lost
        self._closing = False
        self._refusal: Any = None
        # The sink itself, not a wrapper: one coroutine less per message. It
        # takes (event, data=None, *more), as python-socketio calls "*" handlers.
        self._client.on("*", _cheap_to_inspect(sink))
        self._client.on("disconnect", self._disconnected)
        self._client.on("connect_error", self._refused)

    def _take(self, text: Any) -> bool:
        """Hand a plain event (``2[...]``: default namespace, no ack id) to the taker.

        What python-socketio would do with it, without its task: decode it as
        :class:`_Packet` does and call the ``"*"`` handler's equivalent with
        ``(event, data)``. Anything else, or an event this transport handles
        itself, is left to python-socketio (``False``).
        """
        if type(text) is not str or text[:2] != "2[" or self._client._binary_packet:
            return False
        try:
            packet = orjson.loads(text[1:])
        except orjson.JSONDecodeError:
            return False  # python-socketio's own path fails on it as it always did
        if type(packet) is not list or not packet:
            return False
        event = packet[0]
        if type(event) is not str or event in _OWN_EVENTS:
            return False
        return self._take_event(event, packet[1] if len(packet) > 1 else None)

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
        except TypeError as exc:
            # A server that closes the WebSocket as soon as it accepted it (uvicorn's
            # 1012 while it shuts down): python-engineio reads the close frame's code,
            # an int, as the OPEN packet and fails decoding it. The connection is lost,
            # and retrying is right; a TypeError from anywhere else is ours to see.
            if not _raised_in_engineio(exc):
                raise
            raise ConnectionLostError(
                f"connect to {url}: the server closed the connection during the handshake"
            ) from exc

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
