"""The management API as an ASGI app: errors in the protocol's shape, body limit, admin token.

FastAPI validates the bodies; :mod:`.api_docs` serves the OpenAPI description
at ``/api/ws/openapi.json`` and Swagger UI at ``/api/ws/docs``, behind the
same admin token as the API. Every answer,
including validation failures and unknown routes, has the protocol's shape
``{"success": false, "error": {"code", "message"}}`` with a fitting status.
The endpoints themselves are in :mod:`.api_routes`.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from client_sdk.protocol import HTTP_STATUS, ErrorCode, ProtocolError

from . import api_docs
from .api_routes import ApiError, ApiParts, Parts, admin, api_parts, public
from .config import is_loopback
from .operator_routes import metrics_route, mount_admin_ui
from .validation import invalid_message

__all__ = ["ApiParts", "BodyLimit", "LocalHostsOnly", "create_api"]

# The logger keeps this module's name: the docs tell operators to watch
# ``reference_server.api`` for management API failures.
log = logging.getLogger(__name__)


def _failure(status: int, code: ErrorCode, message: str, **extra: Any) -> JSONResponse:
    error: dict[str, Any] = {"code": code.value, "message": message, **extra}
    return JSONResponse({"success": False, "error": error}, status_code=status)


class BodyLimit:
    """Answer 413 ``MESSAGE_TOO_LARGE`` for a body over the limit, before reading it all."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._too_large(scope, receive, send)
            return
        # Read the body here (at most ``limit`` bytes kept): an exception raised
        # from inside the app's ``receive`` would be turned into a 400 by FastAPI.
        body = bytearray()
        more_body = True
        while more_body:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            if len(body) > self.limit:
                await self._too_large(scope, receive, send)
                return
            more_body = message.get("more_body", False)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = _failure(
            413, ErrorCode.MESSAGE_TOO_LARGE, f"request body exceeds {self.limit} bytes"
        )
        await response(scope, receive, send)


def _host_name(header: str) -> str:
    """The name of a ``Host`` header, without its port (``[::1]:5000`` is ``::1``)."""
    if header.startswith("["):
        return header[1:].partition("]")[0]
    name, colon, port = header.rpartition(":")
    return name if colon and port.isdigit() and ":" not in name else header


def is_local_host(header: str) -> bool:
    """Whether a ``Host`` header names this machine: ``localhost`` or a loopback address."""
    name = _host_name(header.strip()).lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost") or is_loopback(name)


class LocalHostsOnly:
    """Refuse every request whose ``Host`` is not this machine's (a server without admin token).

    Such a server listens on loopback only, yet a web page whose name its
    author re-points at 127.0.0.1 (DNS rebinding) reaches it from the user's
    browser as the page's own origin, ``Host: evil.example``: it could publish,
    disconnect and, over the bridge, read. Answered 403 ``UNAUTHORIZED``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine: it hands over the application's own awaitable, so that
        # no frame of this check stays alive as long as a WebSocket does.
        if scope["type"] in ("http", "websocket"):
            given = dict(scope.get("headers") or []).get(b"host")
            host = given.decode("latin-1") if given is not None else None
            if host is not None and not is_local_host(host):
                return self._refuse(host, scope, receive, send)
        return self.app(scope, receive, send)

    @staticmethod
    async def _refuse(host: str, scope: Scope, receive: Receive, send: Send) -> None:
        message = (
            f"Host {host[:100]!r} refused: a server without admin_token answers only "
            "localhost and loopback addresses; set admin_token to serve other names"
        )
        if scope["type"] == "websocket":
            # Closing before accepting: the handshake is answered 403.
            await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
            return
        await _failure(403, ErrorCode.UNAUTHORIZED, message)(scope, receive, send)


class AdminTokenRefused(ProtocolError):
    """A request without the right admin token: an operator's or a scraper's, not a client's.

    Counted in ``intraday_admin_auth_failures_total``, not among the errors
    answered to clients (``/stats`` ``error_count``, ``intraday_errors_total``):
    a Prometheus job without the token must not show up as client failures.
    """


async def require_admin(request: Request, parts: Parts) -> None:
    """The admin-token check of every endpoint but ``/health`` (none without a token set).

    Raises:
        ProtocolError: ``AUTH_FAILED`` (401) without the right bearer token.
    """
    token = parts.settings.admin_token
    if token is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    expected = token.get_secret_value().encode()
    # compare_digest: the time taken must not tell how much of a guess was right.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), expected):
        if parts.metrics is not None:
            parts.metrics.record_admin_refusal(request.url.path)
        raise AdminTokenRefused(ErrorCode.AUTH_FAILED, "admin bearer token required")


# The handlers below answer every failure; each counts as an error in /stats
# except unknown routes, which are the caller's typo rather than a refusal.


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    api_parts(request).stats.record_error(exc.error.code)
    return JSONResponse({"success": False, "error": exc.error.to_wire()}, status_code=exc.status)


async def _protocol_error(request: Request, exc: ProtocolError) -> JSONResponse:
    if not isinstance(exc, AdminTokenRefused):  # counted apart (see there)
        api_parts(request).stats.record_error(exc.code)
    # A store that is down is a 503 (retry later), not a 500 (a bug of ours).
    status = getattr(exc, "http_status", None) or HTTP_STATUS[exc.code]
    return JSONResponse({"success": False, "error": exc.to_wire()}, status_code=status)


async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    error = invalid_message(exc.errors(), "request")
    api_parts(request).stats.record_error(error.code)
    # The shape this API has always answered validation failures with: no ``retryable``.
    return _failure(400, error.code, error.message, details=error.details)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    # Unknown routes and methods: the request itself is wrong.
    response = _failure(exc.status_code, ErrorCode.INVALID_MESSAGE, str(exc.detail))
    response.headers.update(exc.headers or {})
    if exc.status_code == 405:
        # RFC 9110: Allow lists every method of the resource. Starlette names
        # only the first route of the path (GET or DELETE /connections/{id}).
        path = request.url.path
        methods = {
            method
            for route in request.app.routes
            if isinstance(route, APIRoute) and route.path_regex.match(path)
            for method in route.methods or ()
        }
        response.headers["allow"] = ", ".join(sorted(methods))
    return response


async def _crash(request: Request, exc: Exception) -> JSONResponse:
    log.exception("management API failure", exc_info=exc)
    api_parts(request).stats.record_error(ErrorCode.INTERNAL_ERROR)
    return _failure(500, ErrorCode.INTERNAL_ERROR, "internal error")


def create_api(parts: ApiParts) -> ASGIApp:
    """Build the management API over ``parts`` as an ASGI app."""
    app = FastAPI(
        title="intraday-live management API",
        version=parts.version,
        # Served by .api_docs instead: true to the API, local, behind the token.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.api_parts = parts
    app.exception_handler(ApiError)(_api_error)
    app.exception_handler(ProtocolError)(_protocol_error)
    app.exception_handler(RequestValidationError)(_invalid_request)
    app.exception_handler(StarletteHTTPException)(_http_error)
    app.exception_handler(Exception)(_crash)
    app.include_router(public)
    app.include_router(api_docs.assets)
    app.include_router(admin, dependencies=[Depends(require_admin)])
    app.include_router(api_docs.router, dependencies=[Depends(require_admin)])
    settings = parts.settings
    if settings.metrics_enabled:
        guarded = [Depends(require_admin)] if settings.metrics_require_token else []
        app.include_router(metrics_route, dependencies=guarded)
    if settings.admin_ui_enabled:
        mount_admin_ui(app)
    return BodyLimit(app, parts.settings.max_message_size_bytes)
