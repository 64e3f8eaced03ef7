"""``BlockingClient``: the SDK for plain scripts, without ``async``.

An :class:`~client_sdk.IntradayClient` runs on a private event loop in a
daemon thread; every method here hands its work to that loop and waits for
the answer, so exceptions are the SDK's own, exactly as the async client
raises them. :meth:`BlockingClient.messages` turns incoming messages into a
plain iterator over a thread-safe queue::

    with BlockingClient(url="http://localhost:5000", user_id="me",
                        organization_id="acme") as client:
        for message in client.messages(["kpi"], queue_name="support"):
            print(message.event, message.payload)

Handlers registered with :meth:`BlockingClient.on` or
:meth:`BlockingClient.add_listener` run **in the client's loop thread**, not
in the thread that registered them: keep them short, make them thread-safe,
and do not call blocking methods of the client from them (that would wait
for the very loop it blocks; it raises ``RuntimeError`` instead).

The facade also works where an event loop is already running (a Jupyter
cell): its loop is its own, in its own thread. There, prefer the async
client with ``await``, which does not block the notebook's loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any, TypeVar, Unpack

from ._blocking_streams import BlockingSubscription, MessageStream, OnTimeout
from ._callbacks import Handlers
from ._client import ClientStatistics, IntradayClient, Listener
from ._messages import Message
from .config import ClientConfig, ConfigOverrides
from .exceptions import ClientClosedError, IntradayError, RequestTimeoutError
from .protocol import AuthSuccess, Channel, ConnectionState, Payload, Scope

__all__ = ["BlockingClient", "BlockingSubscription", "MessageStream"]

T = TypeVar("T")


class BlockingClient:
    """A blocking facade over :class:`~client_sdk.IntradayClient` for plain scripts.

    Takes the same configuration. Its event loop runs in a daemon thread
    started by :meth:`connect` (or ``with`` entry) and stopped by
    :meth:`close`; calls wait for that loop and raise the SDK's exceptions.

    Example:
        >>> with BlockingClient(url="http://localhost:5000", user_id="me",
        ...                     organization_id="acme") as client:  # doctest: +SKIP
        ...     print(f"{client.ping() * 1000:.1f} ms")
    """

    def __init__(
        self, config: ClientConfig | None = None, /, **overrides: Unpack[ConfigOverrides]
    ) -> None:
        self._client = IntradayClient(config, **overrides)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    # -- the loop thread ------------------------------------------------------

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise ClientClosedError("this client was closed; create a new one")
            if self._loop is not None:
                return self._loop
            loop = asyncio.new_event_loop()
            started = threading.Event()
            thread = threading.Thread(
                target=self._run_loop, args=(loop, started), name="intraday-client", daemon=True
            )
            thread.start()
            started.wait()
            self._loop, self._thread = loop, thread
            return loop

    @staticmethod
    def _run_loop(loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(started.set)
        try:
            loop.run_forever()
        finally:
            try:
                pending = asyncio.all_tasks(loop)
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    def _in_loop_thread(self) -> bool:
        thread = self._thread
        return thread is not None and threading.get_ident() == thread.ident

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coroutine`` on the client's loop and wait for its result."""
        if self._in_loop_thread():
            coroutine.close()
            raise RuntimeError(
                "a blocking call from the client's own loop thread (a handler?) would "
                "deadlock; use the async client there"
            )
        try:
            loop = self._start()
        except BaseException:
            coroutine.close()
            raise
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        try:
            return future.result(timeout)
        except concurrent.futures.CancelledError:
            raise ClientClosedError("the client was closed during the call") from None
        except TimeoutError:
            if future.done():
                raise  # the SDK's own RequestTimeoutError
            future.cancel()
            raise RequestTimeoutError(f"no result within {timeout} s") from None
        except BaseException:
            future.cancel()  # KeyboardInterrupt: do not leave the call running
            raise

    def _call(self, function: Callable[[], T]) -> T:
        """Run a plain function in the loop thread (or here, before it started)."""
        if self._loop is None or self._in_loop_thread():
            return function()

        async def call() -> T:
            return function()

        return self._run(call())

    # -- public state ---------------------------------------------------------

    @property
    def client(self) -> IntradayClient:
        """The async client underneath (use it only from its loop thread)."""
        return self._client

    @property
    def config(self) -> ClientConfig:
        """The configuration in force."""
        return self._client.config

    @property
    def state(self) -> ConnectionState:
        """The current connection state."""
        return self._client.state

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def failure(self) -> IntradayError | None:
        """Why the client is ``failed``, if it is."""
        return self._client.failure

    @property
    def identity(self) -> AuthSuccess | None:
        """The server's answer to the last successful authentication."""
        return self._client.identity

    @property
    def socket_id(self) -> str | None:
        """The server's id for the current connection."""
        return self._client.socket_id

    def statistics(self) -> ClientStatistics:
        """Client-side figures: reconnects, messages, drops, buffers."""
        return self._client.statistics()

    # -- lifecycle ------------------------------------------------------------

    def __enter__(self) -> BlockingClient:
        self._start()
        if self._client.config.auto_connect:
            try:
                self.connect()
            except BaseException:
                self.close()
                raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def connect(self, timeout: float | None = None) -> None:
        """Connect (and authenticate when credentials are configured), retrying as configured.

        Raises:
            ClientClosedError: the client was closed.
            ServerError: the server refused the credentials.
            ReconnectFailedError: every attempt failed.
            RequestTimeoutError: not done within ``timeout`` seconds.
        """
        self._run(self._client.connect(), timeout)

    def wait_for_state(
        self, *states: ConnectionState, timeout: float | None = None
    ) -> ConnectionState:
        """Wait until the state is one of ``states`` (or ``failed``); return it.

        Raises:
            RequestTimeoutError: not reached within ``timeout``.
            IntradayError: the client failed meanwhile (its failure).
        """
        return self._run(self._client.wait_for_state(*states, timeout=timeout))

    def close(self) -> None:
        """Disconnect and stop the loop thread. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._in_loop_thread():
            raise RuntimeError("close() from the client's own loop thread would deadlock")
        try:
            asyncio.run_coroutine_threadsafe(self._client.close(), loop).result()
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()

    # -- requests -------------------------------------------------------------

    def authenticate(
        self, user_id: str, organization_id: str, token: str | None = None
    ) -> AuthSuccess:
        """Authenticate now, and again after every reconnect (see the async client)."""
        return self._run(self._client.authenticate(user_id, organization_id, token))

    def subscribe(
        self,
        channels: Iterable[Channel | str],
        *,
        organization_id: str | None = None,
        department_id: str | None = None,
        queue_name: str | None = None,
        on_message: Callable[[Message[Payload]], None] | None = None,
    ) -> BlockingSubscription:
        """Subscribe to ``channels`` for a filter; the handle's ``close()`` unsubscribes.

        ``on_message`` is called with every message the subscription covers,
        in the client's loop thread (it must not block).

        Raises:
            UnauthorizedError: another organization, or not authenticated.
            ConnectionLostError: not connected.
        """
        subscription = self._run(
            self._client.subscribe(
                tuple(channels),
                organization_id=organization_id,
                department_id=department_id,
                queue_name=queue_name,
                on_message=on_message,
            )
        )
        return BlockingSubscription(self, subscription)

    def ping(self) -> float:
        """Round trip of a ``client:ping``, in seconds."""
        return self._run(self._client.ping())

    def on(self, **handlers: Unpack[Handlers]) -> Callable[[], None]:
        """Register handlers (as :meth:`IntradayClient.on`); returns their remover.

        The handlers run in the client's loop thread.
        """
        return self._remover(self._call(lambda: self._client.on(**handlers)))

    def add_listener(self, key: Channel | str, listener: Listener) -> Callable[[], None]:
        """``listener(message)`` for an event, a channel or ``"*"``, in the loop thread.

        Returns the listener's remover.
        """
        return self._remover(self._call(lambda: self._client.add_listener(key, listener)))

    def _remover(self, remove: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            with contextlib.suppress(ClientClosedError):
                self._call(remove)

        return run

    def messages(
        self,
        channels: Iterable[Channel | str] = (Channel.ALL,),
        *,
        organization_id: str | None = None,
        department_id: str | None = None,
        queue_name: str | None = None,
        timeout: float | None = None,
        on_timeout: OnTimeout = "raise",
        max_queued: int = 10_000,
    ) -> MessageStream:
        """Subscribe and iterate over the messages of that subscription.

        Args:
            channels: channels to receive (``all`` by default).
            organization_id: defaults to the authenticated organization.
            department_id: only this department's messages.
            queue_name: only this queue's messages.
            timeout: how long to wait for each message (``None``: for ever).
            on_timeout: what a quiet ``timeout`` does: ``"raise"``
                :class:`~client_sdk.RequestTimeoutError` (the stream stays
                usable), or ``"stop"`` the iteration with
                :attr:`MessageStream.timed_out` set.
            max_queued: messages kept for a slow reader; older ones are dropped.

        Raises:
            ConnectionLostError: not connected.
            UnauthorizedError: another organization.
        """
        if on_timeout not in ("raise", "stop"):
            raise ValueError("on_timeout: 'raise' or 'stop'")
        if max_queued < 1:
            raise ValueError("max_queued: at least 1")
        stream = MessageStream(
            self,
            tuple(Channel(c) for c in channels),
            Scope(organization_id, department_id, queue_name),
            timeout=timeout,
            on_timeout=on_timeout,
            max_queued=max_queued,
        )
        stream._start()
        return stream
