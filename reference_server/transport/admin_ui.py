"""The official Socket.IO Admin UI on namespace ``/admin`` (python-socketio's ``instrument``)."""

from __future__ import annotations

import hmac
from typing import Any

from ..config import ServerSettings
from .socketio_server import IntradaySocketServer

__all__ = ["instrument_for_admin_ui"]


def instrument_for_admin_ui(server: IntradaySocketServer, settings: ServerSettings) -> Any:
    """Let the official Socket.IO Admin UI connect to namespace ``/admin``.

    Its credentials are the user name ``admin`` and the admin token as the
    password (no authentication without a token, which only loopback allows).
    ``production`` mode: python-socketio then reports no per-event details.

    Returns python-socketio's instrumentation, whose ``uninstrument()`` the
    application calls when it stops: ``instrument()`` patches python-engineio's
    socket class for the whole process, so an instrumented server left behind
    breaks every server started after it in the same process (one instrumented
    server per process at a time).
    """
    token = settings.admin_token

    def allowed(credentials: Any) -> bool:
        if token is None:
            return True
        if not isinstance(credentials, dict):
            return False
        given = str(credentials.get("password", "")).encode()
        # compare_digest: the time taken must not tell how much of a guess was right.
        return credentials.get("username") == "admin" and hmac.compare_digest(
            given, token.get_secret_value().encode()
        )

    instrumented = server.instrument(
        auth=allowed if token is not None else False, mode="production"
    )
    server.foreign_namespaces = True
    return instrumented
