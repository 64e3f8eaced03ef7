"""The connection supervisor: one task that keeps a client connected.

It connects (retrying on the client's policy, :mod:`client_sdk._retry`),
authenticates with a fresh token, restores exactly the open subscriptions,
then waits for the connection to drop and starts over, until the client is
closed, reconnection gives up (state ``failed``) or the server kicked the
client (state ``disconnected``; which losses are retried is
:mod:`client_sdk._disconnect_policy`'s). A new transport is made
for every attempt, so reconnecting never stacks handlers or tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from tenacity import RetryError

from ._disconnect_policy import is_terminal
from ._dispatch import Dispatcher
from ._requests import WireRequest, build_request, parse_ack, request
from ._retry import RetryPolicy
from ._state import StateCell
from ._transport import SocketIOTransport
from .config import ClientConfig
from .exceptions import (
    AuthenticationError,
    ConnectionLostError,
    IntradayError,
    ReconnectFailedError,
)
from .protocol import AuthenticateRequest, AuthSuccess, ClientEvent, ConnectionState

__all__ = ["Supervisor", "WireRequest", "build_request", "request"]

log = logging.getLogger("client_sdk")

Fire = Callable[..., Coroutine[Any, Any, None]]
"""Runs the application's lifecycle handlers of a name (``on_connect``...)."""


class Supervisor:
    """Owns the client's connection: its transport, its identity, its retries.

    Args:
        config: the client's configuration.
        states: the client's state; every move goes through it.
        dispatcher: receives every server event (and says if maintenance was announced).
        restore: subscribes the open subscriptions again on a new connection.
        fire: runs lifecycle handlers (``on_connect``, ``on_disconnect``, ...).
        report: publishes an error on the client's ``errors``.
    """

    def __init__(
        self,
        config: ClientConfig,
        *,
        states: StateCell,
        dispatcher: Dispatcher,
        restore: Callable[[SocketIOTransport], Awaitable[None]],
        fire: Fire,
        report: Callable[[IntradayError], None],
    ) -> None:
        self._config = config
        self._states = states
        self._dispatcher = dispatcher
        self._restore = restore
        self._fire = fire
        self._report = report
        self._policy = RetryPolicy.of(config)
        self.credentials: tuple[str, str] | None = (
            (config.user_id, config.organization_id)
            if config.user_id and config.organization_id
            else None
        )
        self.identity: AuthSuccess | None = None
        self.transport: SocketIOTransport | None = None
        self.failure: IntradayError | None = None
        self.last_error: BaseException | None = None
        """Why the latest connection attempt failed (kept after a success)."""
        self.reconnects = 0
        self._task: asyncio.Task[None] | None = None
        self._lost: asyncio.Event | None = None
        self._lost_reason = ""
        self._stopping = False
        self._background: set[asyncio.Task[None]] = set()

    @property
    def running(self) -> bool:
        """Whether the supervisor task is alive (connecting, connected or reconnecting)."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start supervising; return once connected (and authenticated).

        Raises:
            IntradayError: why it gave up (the supervisor has then ended).
        """
        loop = asyncio.get_running_loop()
        self._lost = asyncio.Event()
        self._stopping = False
        self.failure = None
        ready: asyncio.Future[None] = loop.create_future()
        self._task = loop.create_task(self._supervise(ready), name="intraday-supervisor")
        await ready

    async def stop(self) -> None:
        """End the supervisor and close the transport; never raises."""
        self._stopping = True
        if self._lost is not None:
            self._lost.set()
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        transport, self.transport = self.transport, None
        if transport is not None:
            await transport.close()

    async def request(self, event: str, body: WireRequest) -> dict[str, Any]:
        """A protocol request on the live connection; its success ack.

        Raises:
            ConnectionLostError: not connected.
            ServerError: the server refused.
        """
        transport = self.transport
        if transport is None:
            raise ConnectionLostError(f"not connected (state: {self._states.value})")
        return await request(transport, event, body, self._config.ack_timeout)

    # -- the loop -----------------------------------------------------------------

    async def _supervise(self, ready: asyncio.Future[None]) -> None:
        assert self._lost is not None
        first = True
        while True:
            try:
                await self._establish(first)
                if self._stopping:
                    return
            except IntradayError as exc:
                self._fail(exc, ready)
                return
            except Exception as exc:  # a bug or a foreign failure must not hang connect()
                log.exception("intraday client supervisor failed")
                failure = IntradayError(f"unexpected failure: {type(exc).__name__}: {exc}")
                failure.__cause__ = exc
                self._fail(failure, ready)
                return
            if first:
                first = False
            else:
                self.reconnects += 1
                await self._fire("on_reconnect")
            if not ready.done():
                ready.set_result(None)
            await self._lost.wait()
            if self._stopping:
                return
            reason = self._lost_reason
            transport, self.transport = self.transport, None
            if transport is not None:
                await transport.close()
            # The state says what happens next before the handler hears of the loss.
            kicked = is_terminal(
                reason,
                maintenance_announced=self._dispatcher.maintenance,
                reconnect_after_kick=self._config.reconnect_after_kick,
            )
            if kicked:
                log.warning("intraday client: kicked by the server (%s); not retrying", reason)
            reconnecting = self._config.reconnection and not kicked
            self._states.set(
                ConnectionState.RECONNECTING if reconnecting else ConnectionState.DISCONNECTED
            )
            await self._fire("on_disconnect", reason)
            if not reconnecting:
                return

    def _fail(self, exc: IntradayError, ready: asyncio.Future[None]) -> None:
        self.failure = exc
        self._states.set(ConnectionState.FAILED)
        log.warning("intraday client failed: %s", exc)
        self._report(exc)
        if not ready.done():
            ready.set_exception(exc)
        else:
            # The supervisor is ending; a task of its own keeps on_error from
            # being cancelled with it, and the reference keeps the task alive.
            task = asyncio.get_running_loop().create_task(self._fire("on_error", exc))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def _on_lost(self, reason: str) -> None:
        self._lost_reason = reason
        if self._lost is not None:
            self._lost.set()

    async def _establish(self, first: bool) -> None:
        """One outage's worth of attempts: connect, authenticate, resubscribe."""
        try:
            retrying = self._policy.retrying(what="connection", on_failure=self._attempt_failed)
            async for attempt in retrying:
                with attempt:
                    self._states.set(
                        ConnectionState.CONNECTING if first else ConnectionState.RECONNECTING
                    )
                    await self._attempt()
        except RetryError as exc:
            last = exc.last_attempt.exception()
            error = ReconnectFailedError(
                f"gave up after {exc.last_attempt.attempt_number} attempts: {last}"
            )
            raise error from last

    def _attempt_failed(self, error: BaseException) -> None:
        self.last_error = error

    async def _attempt(self) -> None:
        assert self._lost is not None
        if self._stopping:
            # stop() cancelled us, but Python 3.11's wait_for can swallow a
            # cancellation whose future finished at the same moment: never
            # start again (nor clear the loss stop() signalled) once stopping.
            raise asyncio.CancelledError
        if self.transport is not None:
            await self.transport.close()
        self._lost.clear()
        self._dispatcher.maintenance = False
        transport = SocketIOTransport(
            self._dispatcher.receive, self._on_lost, self._dispatcher.take
        )
        self.transport = transport
        config = self._config
        try:
            await transport.open(
                config.url,
                path=config.path,
                transports=config.transports,
                headers=config.headers,
                timeout=config.timeout,
            )
            self._states.set(ConnectionState.CONNECTED)
            await self._fire("on_connect")
            if self.credentials is not None:
                await self._authenticate(transport, *self.credentials)
            await self._restore(transport)
        except BaseException:
            self.transport = None
            await transport.close()
            raise
        if self._lost.is_set():
            raise ConnectionLostError(f"connection lost while setting up: {self._lost_reason}")
        if self.credentials is not None:
            # Only now: "authenticated" after a reconnect means subscriptions are back.
            self._states.set(ConnectionState.AUTHENTICATED)

    # -- authentication -----------------------------------------------------------

    async def token(self, refresh: bool = False) -> str | None:
        """The token to send: the provider's (asked every time) or the configured one."""
        provider = self._config.token_provider
        if provider is None:
            return None if refresh else self._config.token
        token = provider()
        if inspect.isawaitable(token):
            token = await token
        return token

    async def _authenticate(self, transport: SocketIOTransport, user_id: str, org: str) -> None:
        try:
            await self.send_authenticate(transport, user_id, org, await self.token())
        except AuthenticationError as exc:
            if exc.reason != "token_expired" or self._config.token_provider is None:
                raise
            # One fresh token, then give up: a provider that keeps handing out
            # expired tokens must not cause a retry storm.
            await self.send_authenticate(transport, user_id, org, await self.token(True))

    async def send_authenticate(
        self, transport: SocketIOTransport, user_id: str, org: str, token: str | None
    ) -> AuthSuccess:
        """``authenticate`` on ``transport``; the server's answer, also kept as :attr:`identity`.

        Raises:
            ValueError: an id is not a protocol identifier (nothing was sent).
            AuthenticationError, UnauthorizedError: the server refused.
            MalformedMessageError: the success ack is not the protocol's.
        """
        body = build_request(
            AuthenticateRequest,
            user_id=user_id,
            organization_id=org,
            token=token,
            capabilities=list(self._config.announced),
        )
        ack = await request(transport, ClientEvent.AUTHENTICATE, body, self._config.ack_timeout)
        self.identity = parse_ack(AuthSuccess, ClientEvent.AUTHENTICATE, ack)
        return self.identity

    @property
    def server_capabilities(self) -> frozenset[str]:
        """What the server announced at authentication."""
        identity = self.identity
        return frozenset(identity.server.capabilities) if identity is not None else frozenset()
