"""The screen every incoming event passes before it is handled: size and rate (section 8).

Both transports measure an event before decoding it and ask the screen
whether it may go on to the hub. The screen answers the refusals itself
(``MESSAGE_TOO_LARGE``, ``RATE_LIMIT_EXCEEDED``) and disconnects a client
that keeps exceeding the rate, through the :class:`ConnectionControl` it is
given (the hub), so that it needs nothing else of the server.

:class:`IngressScreen` is also a construction seam: ``IntradayApp`` and
``ReferenceServer`` take a ``wrap_screen`` that wraps the real screen, which is
how the contract suite's tests build a server that mishandles oversized
messages.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from client_sdk.protocol import ErrorCode, ProtocolError

from .config import ServerSettings
from .connections import Connection
from .metrics import ServerMetrics
from .ratelimit import RateVerdict

__all__ = ["ConnectionControl", "IngressScreen", "LimitScreen", "ScreenWrapper"]

log = logging.getLogger("reference_server")


class ConnectionControl(Protocol):
    """What a screen may do about a connection whose event it refuses."""

    async def refuse(
        self, connection: Connection, error: ProtocolError, ack_id: int | None
    ) -> None:
        """Answer a refused event: in its ack if it asked for one, else as ``error``."""
        ...

    async def disconnect(self, connection: Connection, *, reason: str = "kicked") -> None:
        """Close the connection from the server side (``reason`` is counted)."""
        ...


class IngressScreen(Protocol):
    """Decides whether an incoming event may be handled."""

    async def passes(self, connection: Connection, size: int, ack_id: int | None) -> bool:
        """``True`` when the event of ``size`` bytes may be handled.

        Otherwise the screen has dealt with it (answered the refusal, and
        disconnected a client that keeps exceeding the rate) and the event
        must be dropped.
        """
        ...


ScreenWrapper = Callable[[IngressScreen, ServerSettings], IngressScreen]
"""Builds the screen a server uses from its real one and its settings (a test seam)."""


class LimitScreen:
    """The reference screen: ``max_message_size_bytes`` and the per-client rate limit."""

    def __init__(
        self,
        settings: ServerSettings,
        control: ConnectionControl,
        metrics: ServerMetrics | None = None,
    ) -> None:
        self._max_size = settings.max_message_size_bytes
        self._rate = settings.rate_limit_messages_per_second
        self._strikes = settings.rate_limit_strikes
        self._control = control
        self._metrics = metrics

    async def passes(self, connection: Connection, size: int, ack_id: int | None) -> bool:
        """Apply the size limit, then the rate limit (see :class:`IngressScreen`)."""
        if connection.closing:
            return False  # the server is closing it; nothing more gets handled
        connection.touch()
        if size > self._max_size:
            error = ProtocolError(
                ErrorCode.MESSAGE_TOO_LARGE,
                f"message of {size} bytes exceeds the limit of {self._max_size}",
                details={"size": size, "limit": self._max_size},
            )
            await self._control.refuse(connection, error, ack_id)
            return False
        verdict = connection.rate_window.hit(
            time.monotonic(), limit=self._rate, strikes=self._strikes
        )
        if verdict is RateVerdict.ALLOW:
            return True
        error = ProtocolError(
            ErrorCode.RATE_LIMIT_EXCEEDED,
            f"more than {self._rate} events per second",
            details={"limit": self._rate},
        )
        if self._metrics is not None:
            self._metrics.record_rate_limited()
        await self._control.refuse(connection, error, ack_id)
        if verdict is RateVerdict.DISCONNECT:
            log.warning("disconnecting %s: kept exceeding the rate limit", connection.socket_id)
            await self._control.disconnect(connection, reason="rate_limit")
        return False
