"""One request of the management API over HTTP, and what its answer means (protocol section 9).

:class:`AdminHttp` is what :class:`client_sdk.admin.AdminClient` sends its
routes through: the httpx connection pool (created on first use, so nothing
binds to an event loop before), the admin token, the translation of every
failure into the SDK's exceptions, the validation of every answer against
its protocol model, and the retries of a publish under one idempotency key.

httpx is an implementation detail: its exceptions are translated in one
place, :func:`_translate_errors`, and never reach the caller.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar, cast

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
from .protocol import API_BASE, BroadcastResult, ErrorCode, ErrorInfo, Scope

__all__ = ["IDEMPOTENCY_HEADER", "AdminHttp", "jsonable"]

_Model = TypeVar("_Model", bound=BaseModel)

_SNIPPET = 200
"""How much of an unexpected body an error quotes."""

IDEMPOTENCY_HEADER = "Idempotency-Key"
"""The header that makes a publish safe to retry (protocol section 9)."""


class AdminHttp:
    """The HTTP side of an admin client: one pool, one token, answers read into models.

    Args:
        base_url: the server's root URL; :data:`~client_sdk.protocol.API_BASE`
            is appended unless it already ends with it.
        token: the admin token (``None``: no ``Authorization`` header).
        timeout: seconds allowed for connecting, and for each read and write.
        transport: an httpx transport to use instead of the network.
        publish_attempts: how many times :meth:`post_publish` sends a publish.
        retry_delay: seconds before the first retry of a publish, doubling up to 2 s.

    Raises:
        ValueError: ``base_url`` is not an absolute http(s) URL, or
            ``publish_attempts`` is below 1.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None,
        publish_attempts: int,
        retry_delay: float,
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
        self.api_url = root if root.endswith(API_BASE) else root + API_BASE
        """The management API's base URL, ending with ``/api/ws``."""
        self._token = token
        self._timeout = timeout
        self._transport = transport
        self._publish_attempts = publish_attempts
        self._retry_delay = retry_delay
        self._client: httpx.AsyncClient | None = None
        self.closed = False
        """Whether :meth:`close` has been called."""

    def open(self) -> httpx.AsyncClient:
        """The connection pool, created on first use.

        Raises:
            ClientClosedError: after :meth:`close`.
        """
        if self.closed:
            raise ClientClosedError("the AdminClient is closed")
        if self._client is None:
            headers = {"Accept": "application/json"}
            if self._token is not None:
                headers["Authorization"] = f"Bearer {self._token}"
            self._client = httpx.AsyncClient(
                base_url=self.api_url + "/",
                headers=headers,
                timeout=httpx.Timeout(self._timeout),
                transport=self._transport,
                follow_redirects=False,
            )
        return self._client

    async def close(self) -> None:
        """Close the connection pool. Idempotent; nothing can be sent afterwards."""
        self.closed = True
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def call(
        self,
        model: type[_Model],
        method: str,
        route: str,
        *,
        params: Mapping[str, str] | None = None,
        body: dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> _Model:
        """Send one request to ``route`` (relative to the API's base); its answer as ``model``.

        Raises:
            ServerError: the server answered with an error, or with a body
                that is not ``model`` (code ``INTERNAL_ERROR``).
            ConnectionLostError: the server cannot be reached.
            RequestTimeoutError: the server did not answer in time.
            ClientClosedError: after :meth:`close`.
        """
        client = self.open()
        with _translate_errors():
            response = await client.request(
                method, route, params=params, json=body, headers=headers
            )
        return _parse(model, _read_body(response), response.status_code)

    async def post_publish(
        self,
        route: str,
        body: dict[str, Any],
        params: Mapping[str, str] | None,
        idempotency_key: str | None,
    ) -> BroadcastResult:
        """POST a publish with one key, retried while its fate is unknown or refused 503.

        ``idempotency_key`` is a new random one when not given: the retries of
        one call share it, so a server that honours it delivers the message once.
        """
        headers = {IDEMPOTENCY_HEADER: idempotency_key or uuid.uuid4().hex}
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._publish_attempts),
            wait=wait_exponential(multiplier=self._retry_delay, max=2.0),
            retry=retry_if_exception(_worth_retrying),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self.call(
                    BroadcastResult, "POST", route, params=params, body=body, headers=headers
                )
        raise AssertionError("unreachable: tenacity re-raises the last failure")


def jsonable(data: BaseModel | Scope | Mapping[str, Any], what: str) -> dict[str, Any]:
    """A payload or target as a JSON object: models dumped, mappings converted.

    Raises:
        TypeError: ``data`` is neither a pydantic model nor a mapping.
    """
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json", exclude_unset=True)
    if isinstance(data, Scope):  # a BroadcastTarget too: its unset fields are None
        return cast(dict[str, Any], to_jsonable_python(data, exclude_none=True))
    if isinstance(data, Mapping):
        return cast(dict[str, Any], to_jsonable_python(dict(data)))
    raise TypeError(f"{what} must be a pydantic model or a mapping, not {type(data).__name__}")


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
