"""Session admission: Engine.IO sessions before (and between) their Socket.IO sockets.

python-socketio sees only sessions that sent CONNECT; an Engine.IO session
that never does would otherwise hold a connection for ever. Each one without
a socket ("bare") holds a place in the hub's connection count
(:meth:`~reference_server.hub.Hub.reserve`) and is closed when its timer fires.
A full server still admits a few sessions beyond its limit, briefly, so that
their CONNECT can be refused with the protocol's ``CONNECTION_LIMIT`` ERROR
(an Engine.IO refusal reaches a client as a bare HTTP 401); beyond those few
the handshake itself is refused. CONNECT packets are rate-limited per session.

The hooks that call into this live in :mod:`.socketio_server` (its table).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from client_sdk.protocol import ErrorCode, ProtocolError

from ..hub import Hub
from ..ratelimit import RateVerdict, RateWindow

__all__ = ["OVERFLOW_SECONDS", "OVERFLOW_SESSIONS", "SessionAdmission"]

log = logging.getLogger(__name__)

OVERFLOW_SESSIONS = 16
"""Sessions a full server still admits, to refuse their CONNECT with ``CONNECTION_LIMIT``."""

OVERFLOW_SECONDS = 2.0
"""How long such a session may wait before sending its CONNECT."""


class SessionAdmission:
    """Bare sessions and their deadlines, and the CONNECT rate of each session.

    Args:
        hub: counts the places.
        expire: closes a session whose deadline passed.
    """

    def __init__(self, hub: Hub, expire: Callable[[str], None]) -> None:
        self._hub = hub
        self._expire = expire
        self._bare: dict[str, tuple[asyncio.TimerHandle, bool]] = {}
        self._overflow_sessions = 0
        self._connects: dict[str, RateWindow] = {}

    def watch(self, eio_sid: str) -> bool:
        """Count ``eio_sid`` as a session without a socket; ``False`` if there is no room."""
        if eio_sid in self._bare:
            return True
        settings = self._hub.settings
        try:
            self._hub.reserve()
        except ProtocolError:
            self._hub.stats.record_error()
            if self._overflow_sessions >= OVERFLOW_SESSIONS:
                return False
            self._overflow_sessions += 1
            delay = min(settings.auth_timeout_ms / 1000, OVERFLOW_SECONDS)
            reserved = False
        else:
            delay = settings.auth_timeout_ms / 1000
            reserved = True
        handle = asyncio.get_running_loop().call_later(delay, self._expired, eio_sid)
        self._bare[eio_sid] = (handle, reserved)
        return True

    def unwatch(self, eio_sid: str) -> None:
        """The session has a socket now (or ended): it no longer holds a bare place."""
        entry = self._bare.pop(eio_sid, None)
        if entry is None:
            return
        handle, reserved = entry
        handle.cancel()
        if reserved:
            self._hub.release()
        else:
            self._overflow_sessions -= 1

    def ended(self, eio_sid: str) -> None:
        """Forget everything about the session."""
        self.unwatch(eio_sid)
        self._connects.pop(eio_sid, None)

    def connect_refusal(self, eio_sid: str) -> ProtocolError | None:
        """The error for a CONNECT over the session's rate, or ``None`` if it may proceed."""
        limit = self._hub.settings.handshake_rate_limit_per_second
        window = self._connects.setdefault(eio_sid, RateWindow())
        if window.hit(time.monotonic(), limit=limit, strikes=1) is RateVerdict.ALLOW:
            return None
        return ProtocolError(
            ErrorCode.RATE_LIMIT_EXCEEDED,
            f"more than {limit} CONNECT packets per second on one session",
            details={"limit": limit},
        )

    def _expired(self, eio_sid: str) -> None:
        if eio_sid in self._bare:
            self.unwatch(eio_sid)
            log.debug("closing Engine.IO session %s: no Socket.IO CONNECT in time", eio_sid)
            self._hub.stats.record_disconnect("no_connect_timeout")
            self._expire(eio_sid)
