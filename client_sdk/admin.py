"""A typed async client for the HTTP management API (protocol section 9).

:class:`AdminClient` reads the server's state (health, stats, connections,
rooms), disconnects sockets and publishes messages. Every answer is parsed
into the protocol's models from :mod:`client_sdk.protocol`, and every failure
is one of the SDK's exceptions:

* a failure body ``{"success": false, "error": {...}}`` raises the
  :class:`~client_sdk.exceptions.ServerError` subclass of its protocol code,
  carrying the HTTP status;
* a body that is not JSON, or not the expected shape, raises a
  :class:`~client_sdk.exceptions.ServerError` with code ``INTERNAL_ERROR``;
* a timeout raises :class:`~client_sdk.exceptions.RequestTimeoutError`
  (also a builtin :class:`TimeoutError`);
* any other network failure raises
  :class:`~client_sdk.exceptions.ConnectionLostError`.

httpx is an implementation detail: requests go through
:mod:`client_sdk._admin_http`, where its exceptions are translated in one
place and never reach the caller.

Publishing is safe to retry: every :meth:`AdminClient.broadcast` and
``publish_*`` call sends an ``Idempotency-Key`` of its own (or the one given)
and, when the answer is a timeout, a lost connection or a 503 (the server's
store or broker briefly away), sends the same request with the same key again
(``publish_attempts`` in all, backing off). A server that honours the key
(protocol section 9) delivers the message once and answers every attempt with
the one ``message_id``; a server that ignores it may deliver a retried
message twice, as any retry would.

Example::

    async with AdminClient("http://127.0.0.1:5000", token="s3cret") as admin:
        health = await admin.health()
        result = await admin.publish_kpi(
            {"organization_id": "org_a", "timestamp": "2026-11-25T10:30:00Z", "health_score": 90}
        )
        print(health.status, result.recipients)
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from ._admin_http import AdminHttp, jsonable
from .protocol import (
    AlertPayload,
    AttendanceCheckPayload,
    AttendancePayload,
    BacklogPayload,
    BroadcastKind,
    BroadcastResult,
    BroadcastTarget,
    ConnectionDetail,
    ConnectionInfo,
    ConnectionList,
    DisconnectResult,
    Health,
    KpiPayload,
    MetricAlertPayload,
    Payload,
    Priority,
    RoomList,
    ServerEvent,
    Stats,
)

__all__ = ["AdminClient"]


class AdminClient:
    """An async client of a server's management API (``/api/ws``).

    Use it as an async context manager, or call :meth:`close` when done.
    The HTTP connection pool is created on first use (or on ``__aenter__``),
    so constructing the client binds nothing to an event loop. Once closed,
    every method raises :class:`~client_sdk.exceptions.ClientClosedError`.

    Cancelling any method is safe for the client; a cancelled :meth:`broadcast`
    or ``publish_*`` call may or may not have been delivered.

    Args:
        base_url: the server's root URL, such as ``http://127.0.0.1:5000``;
            :data:`~client_sdk.protocol.API_BASE` is appended (a URL that
            already ends with it is used as is).
        token: the admin token, sent as ``Authorization: Bearer <token>``;
            ``None`` sends no header (enough for :meth:`health`, and for every
            route of a server that has no admin token).
        timeout: seconds allowed for connecting, and for each read and write.
        transport: an httpx transport to use instead of the network (for
            example ``httpx.ASGITransport`` to talk to an app in-process).
        publish_attempts: how many times a publish is sent (with its one
            idempotency key) when it times out, loses its connection or is
            answered 503; 1 never retries.
        retry_delay: seconds before the first retry of a publish, doubling up
            to 2 s.

    Raises:
        ValueError: ``base_url`` is not an absolute http(s) URL.

    Example::

        async with AdminClient("http://127.0.0.1:5000", token=token) as admin:
            for connection in (await admin.connections("org_a")).connections:
                print(connection.socket_id, connection.subscriptions)
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        publish_attempts: int = 4,
        retry_delay: float = 0.2,
    ) -> None:
        self._http = AdminHttp(
            base_url,
            token=token,
            timeout=timeout,
            transport=transport,
            publish_attempts=publish_attempts,
            retry_delay=retry_delay,
        )

    def __repr__(self) -> str:
        return f"<AdminClient {self._http.api_url}{' closed' if self._http.closed else ''}>"

    @property
    def api_url(self) -> str:
        """The management API's base URL, ending with ``/api/ws``."""
        return self._http.api_url

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._http.closed

    async def __aenter__(self) -> Self:
        self._http.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection pool. Idempotent; the client cannot be used afterwards."""
        await self._http.close()

    # -- reading the server's state ----------------------------------------------

    async def health(self) -> Health:
        """Liveness, uptime, connection count and auth mode (needs no token).

        Raises:
            ServerError: the server answered with an error.
            ConnectionLostError: the server cannot be reached.
            RequestTimeoutError: the server did not answer in time.
        """
        return await self._http.call(Health, "GET", "health")

    async def stats(self) -> Stats:
        """Connections, rooms, message counts, latency and error count.

        Raises:
            ServerError: the server refused (``AUTH_FAILED`` without the right token).
            ConnectionLostError: the server cannot be reached.
            RequestTimeoutError: the server did not answer in time.
        """
        return await self._http.call(Stats, "GET", "stats")

    async def connections(self, organization_id: str | None = None) -> ConnectionList:
        """Every connected socket, or only those of ``organization_id``.

        Raises:
            ServerError: the server refused (``INVALID_MESSAGE`` for a malformed id).
            ConnectionLostError: the server cannot be reached.
            RequestTimeoutError: the server did not answer in time.
        """
        params = {"organization_id": organization_id} if organization_id is not None else None
        return await self._http.call(ConnectionList, "GET", "connections", params=params)

    async def connection(self, socket_id: str) -> ConnectionInfo:
        """One connected socket.

        Raises:
            ServerError: the server refused; ``http_status`` is 404 for an unknown socket.
            ConnectionLostError: the server cannot be reached.
            RequestTimeoutError: the server did not answer in time.
        """
        # ConnectionDetail also reads the flat body of servers older than section 9's shape.
        detail = await self._http.call(ConnectionDetail, "GET", _socket_route(socket_id))
        return detail.connection

    async def disconnect(self, socket_id: str) -> DisconnectResult:
        """Disconnect one socket.

        Raises:
            ServerError: the server refused; ``http_status`` is 404 for an unknown socket.
            ConnectionLostError: the server cannot be reached.
            RequestTimeoutError: the server did not answer in time.
        """
        return await self._http.call(DisconnectResult, "DELETE", _socket_route(socket_id))

    async def rooms(self, organization_id: str | None = None) -> RoomList:
        """Every non-empty room with its type and size, or only those of ``organization_id``.

        Raises:
            ServerError: the server refused.
            ConnectionLostError: the server cannot be reached.
            RequestTimeoutError: the server did not answer in time.
        """
        params = {"organization_id": organization_id} if organization_id is not None else None
        return await self._http.call(RoomList, "GET", "rooms", params=params)

    # -- publishing ------------------------------------------------------------------

    async def broadcast(
        self,
        event: ServerEvent | str,
        data: Payload | Mapping[str, Any],
        *,
        target: BroadcastTarget | Mapping[str, Any] | None = None,
        priority: Priority = Priority.MEDIUM,
        requires_ack: bool = False,
        idempotency_key: str | None = None,
    ) -> BroadcastResult:
        """Publish any server event (retried safely, see the module's docstring).

        The server validates ``data`` against the event's payload schema and
        completes ``target`` from the payload's own organization, department
        and queue. A system event with no target and no organization reaches
        every organization.

        Args:
            event: the server event, such as ``ServerEvent.SYSTEM_BROADCAST``.
            data: the payload, as its model or as a mapping.
            target: who it is for (organization, department, queue or socket ids).
            priority: the envelope's priority.
            requires_ack: whether recipients must acknowledge it.
            idempotency_key: the ``Idempotency-Key`` (1-128 of ``A-Za-z0-9_.:-``);
                a new random one when not given. Give your own to make a
                publish safe to repeat across calls (a job run twice, say).

        Returns:
            The message id and the number of sockets it reached.

        Raises:
            ServerError: ``INVALID_MESSAGE`` (HTTP 400) for a bad payload or
                target, in which case nobody received it.
            ConnectionLostError: the server cannot be reached.
            RequestTimeoutError: the server did not answer in time.
        """
        body: dict[str, Any] = {
            "event": str(event),
            "data": jsonable(data, "data"),
            "priority": str(priority),
            "requires_ack": requires_ack,
        }
        if target is not None:
            body["target"] = jsonable(target, "target")
        return await self._http.post_publish("broadcast", body, None, idempotency_key)

    async def publish_kpi(
        self,
        payload: KpiPayload | MetricAlertPayload | Mapping[str, Any],
        *,
        event: ServerEvent | None = None,
        priority: Priority = Priority.MEDIUM,
        requires_ack: bool = False,
        idempotency_key: str | None = None,
    ) -> BroadcastResult:
        """Publish a KPI payload to its own organization, department and queue.

        Args:
            payload: the payload, as its model or as a mapping.
            event: a ``kpi`` channel event; ``kpi:update`` when not given.
            priority: the envelope's priority.
            requires_ack: whether recipients must acknowledge it.
            idempotency_key: as for :meth:`broadcast`.

        Raises:
            ServerError: ``INVALID_MESSAGE`` (HTTP 400) for a bad payload or an
                event of another channel; nobody received it.
            ConnectionLostError: the server cannot be reached.
            RequestTimeoutError: the server did not answer in time.
        """
        return await self._publish(
            BroadcastKind.KPI, payload, event, priority, requires_ack, idempotency_key
        )

    async def publish_backlog(
        self,
        payload: BacklogPayload | MetricAlertPayload | Mapping[str, Any],
        *,
        event: ServerEvent | None = None,
        priority: Priority = Priority.MEDIUM,
        requires_ack: bool = False,
        idempotency_key: str | None = None,
    ) -> BroadcastResult:
        """Publish a backlog payload to its own organization, department and queue.

        Args:
            payload: the payload, as its model or as a mapping.
            event: a ``backlog`` channel event; ``backlog:update`` when not given.
            priority: the envelope's priority.
            requires_ack: whether recipients must acknowledge it.
            idempotency_key: as for :meth:`broadcast`.

        Raises:
            ServerError: ``INVALID_MESSAGE`` (HTTP 400) for a bad payload or an
                event of another channel; nobody received it.
            ConnectionLostError: the server cannot be reached.
            RequestTimeoutError: the server did not answer in time.
        """
        return await self._publish(
            BroadcastKind.BACKLOG, payload, event, priority, requires_ack, idempotency_key
        )

    async def publish_attendance(
        self,
        payload: AttendancePayload
        | AttendanceCheckPayload
        | MetricAlertPayload
        | Mapping[str, Any],
        *,
        event: ServerEvent | None = None,
        priority: Priority = Priority.MEDIUM,
        requires_ack: bool = False,
        idempotency_key: str | None = None,
    ) -> BroadcastResult:
        """Publish an attendance payload to its own organization, department and queue.

        Args:
            payload: the payload, as its model or as a mapping.
            event: an ``attendance`` channel event; ``attendance:update`` when not given.
            priority: the envelope's priority.
            requires_ack: whether recipients must acknowledge it.
            idempotency_key: as for :meth:`broadcast`.

        Raises:
            ServerError: ``INVALID_MESSAGE`` (HTTP 400) for a bad payload or an
                event of another channel; nobody received it.
            ConnectionLostError: the server cannot be reached.
            RequestTimeoutError: the server did not answer in time.
        """
        return await self._publish(
            BroadcastKind.ATTENDANCE, payload, event, priority, requires_ack, idempotency_key
        )

    async def publish_alert(
        self,
        payload: AlertPayload | Mapping[str, Any],
        *,
        event: ServerEvent | None = None,
        priority: Priority = Priority.MEDIUM,
        requires_ack: bool = False,
        idempotency_key: str | None = None,
    ) -> BroadcastResult:
        """Publish an alert to its own organization, department and queue.

        Args:
            payload: the payload, as its model or as a mapping.
            event: an ``alerts`` channel event; ``alert:triggered`` when not given.
            priority: the envelope's priority.
            requires_ack: whether recipients must acknowledge it.
            idempotency_key: as for :meth:`broadcast`.

        Raises:
            ServerError: ``INVALID_MESSAGE`` (HTTP 400) for a bad payload or an
                event of another channel; nobody received it.
            ConnectionLostError: the server cannot be reached.
            RequestTimeoutError: the server did not answer in time.
        """
        return await self._publish(
            BroadcastKind.ALERT, payload, event, priority, requires_ack, idempotency_key
        )

    async def _publish(
        self,
        kind: BroadcastKind,
        payload: BaseModel | Mapping[str, Any],
        event: ServerEvent | None,
        priority: Priority,
        requires_ack: bool,
        idempotency_key: str | None,
    ) -> BroadcastResult:
        params = {"priority": str(priority), "requires_ack": "true" if requires_ack else "false"}
        if event is not None:
            params["event"] = str(event)
        body = jsonable(payload, "payload")
        return await self._http.post_publish(f"broadcast/{kind}", body, params, idempotency_key)


def _socket_route(socket_id: str) -> str:
    if not socket_id:
        raise ValueError("socket_id must not be empty")
    return "connections/" + quote(socket_id, safe="")
