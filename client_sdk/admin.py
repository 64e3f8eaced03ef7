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

httpx is an implementation detail: its exceptions are translated in one place,
:func:`_translate_errors`, and never reach the caller.

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

import contextlib
import json
import uuid
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar, cast
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from .exceptions import (
    ClientClosedError,
    ConnectionLostError,
    RequestTimeoutError,
    ServerError,
)
from .protocol import (
    API_BASE,
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
    ErrorCode,
    ErrorInfo,
    Health,
    KpiPayload,
    MetricAlertPayload,
    Payload,
    Priority,
    RoomList,
    Scope,
    ServerEvent,
    Stats,
)

__all__ = ["AdminClient"]

_Model = TypeVar("_Model", bound=BaseModel)

_SNIPPET = 200
"""How much of an unexpected body an error quotes."""

IDEMPOTENCY_HEADER = "Idempotency-Key"
"""The header that makes a publish safe to retry (protocol section 9)."""


def _worth_retrying(error: BaseException) -> bool:
    """A publish whose fate is unknown or that the server could not take for now."""
    if isinstance(error, RequestTimeoutError | ConnectionLostError):
        return True
    return isinstance(error, ServerError) and error.http_status == 503


def _unexpected(message: str, *, http_status: int | None, body: str | None = None) -> ServerError:
    """A ``ServerError`` with code ``INTERNAL_ERROR`` for an answer we cannot read."""
    details: dict[str, Any] = {}
    if body is not None:
        details["body"] = body[:_SNIPPET]
    info = ErrorInfo(code=ErrorCode.INTERNAL_ERROR, message=message, details=details or None)
    return ServerError.from_error(info, http_status=http_status)


@contextlib.contextmanager
def _translate_errors() -> Iterator[None]:
    """The one seam where httpx exceptions become the SDK's.

    Timeouts first: ``httpx.TimeoutException`` is also an ``httpx.TransportError``.
    """
    try:
        yield
    except httpx.TimeoutException as exc:
        raise RequestTimeoutError(f"management API request timed out: {exc}") from exc
    except httpx.TransportError as exc:
        raise ConnectionLostError(f"management API unreachable: {exc}") from exc
    except httpx.DecodingError as exc:
        raise _unexpected(f"undecodable answer: {exc}", http_status=None) from exc
    except httpx.HTTPError as exc:  # TooManyRedirects and whatever httpx adds later
        raise _unexpected(f"HTTP failure: {exc}", http_status=None) from exc


def _read_body(response: httpx.Response) -> dict[str, Any]:
    """The JSON object of a successful answer, or the SDK exception for a failed one."""
    status = response.status_code
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        raise _unexpected(
            f"HTTP {status} with a body that is not JSON", http_status=status, body=response.text
        ) from None
    if not isinstance(body, dict):
        raise _unexpected(
            f"HTTP {status} with a JSON body that is not an object",
            http_status=status,
            body=response.text,
        )
    if body.get("success") is False:
        try:
            info = ErrorInfo.model_validate(body.get("error"))
        except ValidationError:
            raise _unexpected(
                f"HTTP {status} with a malformed error object",
                http_status=status,
                body=response.text,
            ) from None
        raise ServerError.from_error(info, http_status=status)
    # A 2xx body without ``success`` is taken as it is (servers differ here).
    if not response.is_success:
        raise _unexpected(
            f"HTTP {status} with an unexpected body", http_status=status, body=response.text
        )
    return body


def _parse(model: type[_Model], body: dict[str, Any], status: int) -> _Model:
    """Validate a successful body as ``model``; a mismatch is ``INTERNAL_ERROR``."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise _unexpected(
            f"answer is not a valid {model.__name__}: {exc.error_count()} problem(s)",
            http_status=status,
            body=json.dumps(body, default=str),
        ) from None


def _jsonable(data: BaseModel | Scope | Mapping[str, Any], what: str) -> dict[str, Any]:
    """A payload or target as a JSON object: models dumped, mappings converted."""
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json", exclude_unset=True)
    if isinstance(data, Scope):  # a BroadcastTarget too: its unset fields are None
        return cast(dict[str, Any], to_jsonable_python(data, exclude_none=True))
    if isinstance(data, Mapping):
        return cast(dict[str, Any], to_jsonable_python(dict(data)))
    raise TypeError(f"{what} must be a pydantic model or a mapping, not {type(data).__name__}")


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
        if publish_attempts < 1:
            raise ValueError("publish_attempts: at least 1")
        try:
            url = httpx.URL(base_url)
        except httpx.InvalidURL as exc:
            raise ValueError(f"base_url: not a URL: {base_url!r}") from exc
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"base_url: need an absolute http(s) URL, not {base_url!r}")
        root = str(url.copy_with(query=None, fragment=None)).rstrip("/")
        self._api_url = root if root.endswith(API_BASE) else root + API_BASE
        self._token = token
        self._timeout = timeout
        self._transport = transport
        self._publish_attempts = publish_attempts
        self._retry_delay = retry_delay
        self._client: httpx.AsyncClient | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"<AdminClient {self._api_url}{' closed' if self._closed else ''}>"

    @property
    def api_url(self) -> str:
        """The management API's base URL, ending with ``/api/ws``."""
        return self._api_url

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    async def __aenter__(self) -> Self:
        self._http()
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
        self._closed = True
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _http(self) -> httpx.AsyncClient:
        if self._closed:
            raise ClientClosedError("the AdminClient is closed")
        if self._client is None:
            headers = {"Accept": "application/json"}
            if self._token is not None:
                headers["Authorization"] = f"Bearer {self._token}"
            self._client = httpx.AsyncClient(
                base_url=self._api_url + "/",
                headers=headers,
                timeout=httpx.Timeout(self._timeout),
                transport=self._transport,
                follow_redirects=False,
            )
        return self._client

    async def _call(
        self,
        model: type[_Model],
        method: str,
        route: str,
        *,
        params: Mapping[str, str] | None = None,
        body: dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> _Model:
        client = self._http()
        with _translate_errors():
            response = await client.request(
                method, route, params=params, json=body, headers=headers
            )
        return _parse(model, _read_body(response), response.status_code)

    async def _post_once(
        self,
        route: str,
        body: dict[str, Any],
        params: Mapping[str, str] | None,
        idempotency_key: str | None,
    ) -> BroadcastResult:
        """POST a broadcast with one key, retried while the outcome is unknown or refused 503."""
        headers = {IDEMPOTENCY_HEADER: idempotency_key or uuid.uuid4().hex}
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._publish_attempts),
            wait=wait_exponential(multiplier=self._retry_delay, max=2.0),
            retry=retry_if_exception(_worth_retrying),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._call(
                    BroadcastResult, "POST", route, params=params, body=body, headers=headers
                )
        raise AssertionError("unreachable: tenacity re-raises the last failure")

    # -- reading the server's state ----------------------------------------------

    async def health(self) -> Health:
        """Liveness, uptime, connection count and auth mode (needs no token).

        Raises:
            ServerError: the server answered with an error.
            ConnectionLostError: the server cannot be reached.
            RequestTimeoutError: the server did not answer in time.
        """
        return await self._call(Health, "GET", "health")

    async def stats(self) -> Stats:
        """Connections, rooms, message counts, latency and error count.

        Raises:
            ServerError: the server refused (``AUTH_FAILED`` without the right token).
            ConnectionLostError: the server cannot be reached.
            RequestTimeoutError: the server did not answer in time.
        """
        return await self._call(Stats, "GET", "stats")

    async def connections(self, organization_id: str | None = None) -> ConnectionList:
        """Every connected socket, or only those of ``organization_id``.

        Raises:
            ServerError: the server refused (``INVALID_MESSAGE`` for a malformed id).
            ConnectionLostError: the server cannot be reached.
            RequestTimeoutError: the server did not answer in time.
        """
        params = {"organization_id": organization_id} if organization_id is not None else None
        return await self._call(ConnectionList, "GET", "connections", params=params)

    async def connection(self, socket_id: str) -> ConnectionInfo:
        """One connected socket.

        Raises:
            ServerError: the server refused; ``http_status`` is 404 for an unknown socket.
            ConnectionLostError: the server cannot be reached.
            RequestTimeoutError: the server did not answer in time.
        """
        # ConnectionDetail also reads the flat body of servers older than section 9's shape.
        detail = await self._call(ConnectionDetail, "GET", _socket_route(socket_id))
        return detail.connection

    async def disconnect(self, socket_id: str) -> DisconnectResult:
        """Disconnect one socket.

        Raises:
            ServerError: the server refused; ``http_status`` is 404 for an unknown socket.
            ConnectionLostError: the server cannot be reached.
            RequestTimeoutError: the server did not answer in time.
        """
        return await self._call(DisconnectResult, "DELETE", _socket_route(socket_id))

    async def rooms(self, organization_id: str | None = None) -> RoomList:
        """Every non-empty room with its type and size, or only those of ``organization_id``.

        Raises:
            ServerError: the server refused.
            ConnectionLostError: the server cannot be reached.
            RequestTimeoutError: the server did not answer in time.
        """
        params = {"organization_id": organization_id} if organization_id is not None else None
        return await self._call(RoomList, "GET", "rooms", params=params)

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
            "data": _jsonable(data, "data"),
            "priority": str(priority),
            "requires_ack": requires_ack,
        }
        if target is not None:
            body["target"] = _jsonable(target, "target")
        return await self._post_once("broadcast", body, None, idempotency_key)

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
        body = _jsonable(payload, "payload")
        return await self._post_once(f"broadcast/{kind}", body, params, idempotency_key)


def _socket_route(socket_id: str) -> str:
    if not socket_id:
        raise ValueError("socket_id must not be empty")
    return "connections/" + quote(socket_id, safe="")
