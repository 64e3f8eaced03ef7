"""The reference server as one ASGI application, and how to run it.

:class:`IntradayApp` is the composition root: it builds every part (registry,
stats, handlers, hub, screen, Socket.IO server, fan-out, publisher, API) and
hands each only what it uses. Requests are routed by path: the Socket.IO
path goes to Engine.IO, unless it is a WebSocket upgrade without ``EIO`` in
the query string, which is the plain-WebSocket bridge; everything else is
the management API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qs

import uvicorn
from starlette.types import Receive, Scope, Send

from client_sdk.protocol import BroadcastRequest, ProtocolError, ServerEvent

from . import __version__
from .api import ApiParts, LocalHostsOnly, create_api
from .auth import Authenticator, mode_warning
from .completeness import LiveCompleteness
from .config import ServerSettings
from .connections import Registry
from .delivery import DeliveryRecorder, Fanout, FanoutWrapper, LocalDelivery
from .distribution import Distribution, LocalDistribution
from .handlers import ClientHandlers, describe_server
from .hub import Hub
from .idempotency import Idempotency, open_keys
from .metrics import ServerMetrics
from .publisher import Publisher
from .resume import ReplayHolds, Resumer, ResumerWrapper
from .screening import IngressScreen, LimitScreen, ScreenWrapper
from .stats import ServerStats
from .store import MemoryStore, StoreWrapper, open_store
from .transport import (
    BridgeLink,
    DrainingServer,
    EngineIOGuard,
    IntradaySocketServer,
    Outbox,
    OutboxFanout,
    WebSocketIndex,
    create_socketio_server,
    flush_batches,
    instrument_for_admin_ui,
    serve_bridge,
    websocket_protocol,
)
from .transport.guard import engineio_asgi_app
from .transport.http_guard import ConnectionGuard, connection_cap

if TYPE_CHECKING:
    from .cluster import ClusterNode

__all__ = ["IntradayApp", "ReferenceServer"]

log = logging.getLogger("reference_server")

SERVER_NAME = "intraday-live"
"""The ``server.name`` of the authentication answer."""

SHUTDOWN_NOTICE: Final[Mapping[str, str]] = MappingProxyType(
    {
        "message": "The server is shutting down; reconnect in a moment.",
        "title": "Server shutdown",
        "level": "warning",
    }
)
"""The ``system:maintenance`` payload every client gets when the server stops."""


class IntradayApp:
    """The ASGI application: Socket.IO, the bridge and the management API on one port.

    Args:
        settings: the configuration.
        wrap_fanout: for tests only, builds the fan-out the publisher uses from
            the real one (and the registry): the way to get a server that
            misdelivers (duplicates, leaks, broken envelopes) on purpose.
        wrap_screen: for tests only, builds the screen incoming events pass
            from the real one (and the settings): the way to get a server that
            mishandles oversized or too frequent messages on purpose.
        wrap_store: for tests only, builds the message store from the real one
            (``None`` for ``store="none"``) and the settings: the way to get a
            server whose log loses, reorders or misreports messages on purpose.
        wrap_resumer: for tests only, builds the part that answers ``since``
            and ``snapshot`` from the real one: the way to get a server that
            breaks the replay's ordering or "never twice" rules on purpose.
    """

    def __init__(
        self,
        settings: ServerSettings,
        *,
        wrap_fanout: FanoutWrapper | None = None,
        wrap_screen: ScreenWrapper | None = None,
        wrap_store: StoreWrapper | None = None,
        wrap_resumer: ResumerWrapper | None = None,
    ) -> None:
        self.settings = settings
        self.registry = Registry()
        self.stats = ServerStats()
        # Which uvicorn protocol carries each WebSocket, for the outboxes' direct writes.
        self._websockets = WebSocketIndex()
        self.cluster: ClusterNode | None = None
        if settings.cluster is not None:
            from .cluster import ClusterNode  # only a cluster node needs redis-py

            self.cluster = ClusterNode(settings, self.registry, self.stats)
        self.metrics = ServerMetrics(self.registry, self.stats, enabled=settings.metrics_enabled)
        self.store = open_store(settings)
        if wrap_store is not None:
            self.store = wrap_store(self.store, settings)
        holds = ReplayHolds()
        resumer = Resumer(self.store, holds, self.metrics)
        if isinstance(self.store, MemoryStore):
            self.metrics.set_store_size_source(self.store.held)
        if wrap_resumer is not None:
            resumer = wrap_resumer(resumer)
        server = describe_server(
            settings, name=SERVER_NAME, version=__version__, capabilities=resumer.capabilities
        )
        handlers = ClientHandlers(
            settings,
            self.registry,
            Authenticator(settings),
            server,
            resumer,
            shared_limits=self.cluster,
        )
        self.hub = Hub(
            settings, self.registry, self.stats, handlers, self.metrics, shared_limits=self.cluster
        )
        screen: IngressScreen = LimitScreen(settings, self.hub, self.metrics)
        if wrap_screen is not None:
            screen = wrap_screen(screen, settings)
        self._screen = screen
        self.sio: IntradaySocketServer = create_socketio_server(
            settings,
            self.hub,
            screen,
            websockets=self._websockets,
        )
        self._instrumented: Any = None
        if settings.socketio_admin_ui:
            self._instrumented = instrument_for_admin_ui(self.sio, settings)
        fanout: Fanout = OutboxFanout(self.registry)
        if wrap_fanout is not None:
            fanout = wrap_fanout(fanout, self.registry)
        self.completeness: LiveCompleteness | None = None
        if self.store is not None:
            self.completeness = LiveCompleteness(
                self.store, self.registry, settings.completeness_check_seconds
            )
        recorder = DeliveryRecorder(
            self.stats, self.metrics, log_broadcasts=settings.log_broadcast_events
        )
        local = LocalDelivery(self.registry, fanout, holds, recorder, self.completeness)
        distribution: Distribution = LocalDistribution(local, self.store)
        if self.cluster is not None:
            distribution = self.cluster.distribution(local, self.store)
            self.cluster.bind(kick=self._kick_here, pending_sessions=lambda: self.hub.reserved)
        self.publisher = Publisher(distribution, local, recorder)
        self._engineio = EngineIOGuard(
            engineio_asgi_app(self.sio, settings.path),
            limit=settings.transport_message_limit,
            stats=self.stats,
            websockets=self._websockets,
            abandon=self.sio.abandon,
        )
        self._keys, self._own_keys = open_keys(settings, self.store)
        self._api = create_api(
            ApiParts(
                settings=settings,
                registry=self.registry,
                stats=self.stats,
                hub=self.hub,
                publisher=self.publisher,
                version=__version__,
                metrics=self.metrics,
                store=self.store,
                cluster=self.cluster,
                idempotency=Idempotency(self._keys, settings.idempotency_window_seconds),
            )
        )
        self._background: list[asyncio.Task[None]] = []
        self._path = settings.path.rstrip("/")

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine: it hands over the chosen part's awaitable, so that no
        # frame of this routing stays alive as long as a WebSocket does.
        kind = scope["type"]
        if kind == "lifespan":
            return self._lifespan(receive, send)
        path = scope.get("path", "")
        if path not in (self._path, self._path + "/"):
            return self._api(scope, receive, send)
        query = scope.get("query_string", b"").decode("latin-1")
        if kind == "websocket" and "EIO" not in parse_qs(query):
            policy = self.sio.outbox_policy
            return serve_bridge(self.hub, self._screen, scope, receive, send, policy)
        return self._engineio(scope, receive, send)

    def _outboxes(self) -> list[Outbox]:
        bridged = [c.link.outbox for c in self.registry if isinstance(c.link, BridgeLink)]
        return self.sio.outboxes() + bridged

    async def _kick_here(self, socket_id: str) -> None:
        connection = self.registry.get(socket_id)
        if connection is not None:
            await self.hub.disconnect(connection)

    async def startup(self) -> None:
        """Start the background work: cluster membership, the simulator."""
        warning = mode_warning(self.settings.auth_mode)
        if warning:
            log.warning("%s", warning.upper())
        if self.cluster is not None:
            if self.settings.port:
                self.cluster.listen_url = f"http://{self.settings.host}:{self.settings.port}"
            await self.cluster.start()
        if self.completeness is not None:
            self._background.append(asyncio.create_task(self.completeness.run_forever()))
        if self.settings.simulate:
            from .simulator import IntradaySimulator

            simulator = IntradaySimulator(
                self._publish_quietly, tick_seconds=self.settings.simulate_tick_ms / 1000
            )
            self._background.append(asyncio.create_task(simulator.run()))
            log.info("simulated feed running for %s", ", ".join(simulator.organizations))

    async def _publish_quietly(self, request: BroadcastRequest) -> object:
        try:
            return await self.publisher.publish(request)
        except ProtocolError as error:  # a simulator bug must not stop the feed
            log.error("simulator produced an invalid message: %s", error)
            return None

    async def shutdown(self) -> None:
        """Notify every client of the maintenance, let them drain, disconnect them.

        Then stop the background work. Only the first call notifies anyone.
        """
        if self.hub.stop_admitting():
            log.info("shutting down: notifying %d clients", len(self.registry))
            # A failed notice must not keep the server from stopping.
            with contextlib.suppress(Exception):
                notice = dict(SHUTDOWN_NOTICE)
                await self.publisher.notify_all(ServerEvent.SYSTEM_MAINTENANCE, notice)
            # The notice is urgent: it does not wait for a batch window.
            flush_batches(self._outboxes())
            await asyncio.sleep(self.settings.shutdown_drain_ms / 1000)
            await self.hub.disconnect_all()
        flush_batches(self._outboxes())  # whatever is gathered goes out; no timer is left armed
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._background.clear()
        if self._instrumented is not None:
            # Its patches are process-wide: leave the next server in this process unpatched.
            self._instrumented.uninstrument()
            self._instrumented = None
        if self.cluster is not None:
            await self.cluster.stop()
        if self.store is not None:
            await self.store.close()
        close_keys = getattr(self._keys, "close", None)
        if self._own_keys and close_keys is not None:
            await close_keys()  # a cluster without a store keeps its keys in Redis

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


class ReferenceServer:
    """A runnable reference server: ``serve()`` in the foreground, or ``start()``/``stop()``.

    Args:
        settings: the configuration; ``port=0`` picks a free port.
        install_signal_handlers: handle SIGTERM/SIGINT (off when embedded in tests).
        wrap_fanout: for tests only, see :class:`IntradayApp`.
        wrap_screen: for tests only, see :class:`IntradayApp`.
        wrap_store: for tests only, see :class:`IntradayApp`.
        wrap_resumer: for tests only, see :class:`IntradayApp`.
    """

    def __init__(
        self,
        settings: ServerSettings,
        *,
        install_signal_handlers: bool = True,
        wrap_fanout: FanoutWrapper | None = None,
        wrap_screen: ScreenWrapper | None = None,
        wrap_store: StoreWrapper | None = None,
        wrap_resumer: ResumerWrapper | None = None,
    ) -> None:
        self.settings = settings
        self.app = IntradayApp(
            settings,
            wrap_fanout=wrap_fanout,
            wrap_screen=wrap_screen,
            wrap_store=wrap_store,
            wrap_resumer=wrap_resumer,
        )
        # No admin token: only this machine's names (DNS rebinding, see LocalHostsOnly).
        served = self.app if settings.admin_token is not None else LocalHostsOnly(self.app)
        self.connection_guard = ConnectionGuard(
            header_timeout=settings.http_header_timeout_seconds,
            max_connections=connection_cap(settings.max_connections_total),
        )
        config = uvicorn.Config(
            self.connection_guard.wrap(served),
            http=self.connection_guard.protocol,
            host=settings.host,
            port=settings.port,
            lifespan="on",
            ws_max_size=settings.transport_message_limit,
            ws_per_message_deflate=settings.compression_enabled,
            # Messages under the threshold go uncompressed, as Node's ws does.
            ws=websocket_protocol(settings.compression_threshold_bytes),
            # The bridge's heartbeat (protocol §1: the same rules as Engine.IO's);
            # Engine.IO WebSockets get the pings too, which every client answers.
            ws_ping_interval=settings.ping_interval_ms / 1000,
            ws_ping_timeout=settings.ping_timeout_ms / 1000,
            log_config=None,
            access_log=False,
            # Said, not guessed: uvicorn would take an application whose __call__
            # is not a coroutine function for ASGI 2 (ours return their awaitable).
            interface="asgi3",
            timeout_graceful_shutdown=5,
        )
        self._server = DrainingServer(config, self.app, signals=install_signal_handlers)
        self._task: asyncio.Task[None] | None = None

    @property
    def hub(self) -> Hub:
        """The server's core: its ``registry``, ``stats``, ``settings`` and ``handlers``."""
        return self.app.hub

    @property
    def publisher(self) -> Publisher:
        """What the management API and the simulator publish through."""
        return self.app.publisher

    @property
    def port(self) -> int:
        """The port actually bound (useful with ``port=0``)."""
        ports = self._server.ports()
        if not ports:
            raise RuntimeError("the server is not listening")
        return ports[0]

    @property
    def url(self) -> str:
        """``http://host:port`` of the running server."""
        return f"http://{self.settings.host}:{self.port}"

    def _bind(self) -> socket.socket:
        """The listening socket, bound here so that a taken port is an ``OSError``.

        uvicorn binds it itself otherwise, and answers a taken port with
        ``sys.exit(1)`` from inside the event loop.
        """
        host, port = self.settings.host, self.settings.port
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )[0]
        listener = socket.socket(family, kind, proto)
        try:
            if os.name == "posix":  # as socket.create_server: on Windows it would share the port
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            # Without it a response written in two parts waits for the client's
            # delayed ACK (Nagle): 44 ms per request on a kept-alive connection.
            # Accepted sockets inherit it (Linux, BSD); asyncio sets it on each
            # too, but only on sockets made with IPPROTO_TCP, as this one is.
            listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            listener.bind(address)
            listener.listen(2048)
        except BaseException:
            listener.close()
            raise
        return listener

    async def serve(self) -> None:
        """Run until a signal (or :meth:`stop`) ends it.

        Raises:
            OSError: the address cannot be bound (the port is taken, say).
        """
        await self._server.serve(sockets=[self._bind()])

    async def start(self) -> None:
        """Start serving in the background and return once listening.

        Raises:
            OSError: the address cannot be bound (the port is taken, say).
        """
        listener = self._bind()
        self._task = asyncio.create_task(self._server.serve(sockets=[listener]))
        listening = asyncio.create_task(self._server.listening.wait())
        await asyncio.wait({self._task, listening}, return_when=asyncio.FIRST_COMPLETED)
        if not self._server.listening.is_set():
            listening.cancel()
            await self._task
            raise RuntimeError("the server stopped during start-up")

    async def wait_stopped(self) -> None:
        """Wait until the server has stopped (after a signal or :meth:`stop`)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        """Drain (maintenance notice, disconnect) and stop."""
        if self._task is None:
            return
        await self._server.stop()
        await self._task
        self._task = None
