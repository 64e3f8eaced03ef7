"""The client connection states and the moves between them."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final

__all__ = ["ALLOWED_TRANSITIONS", "ConnectionState"]


class ConnectionState(StrEnum):
    """Where a client connection is in its life."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    AUTHENTICATED = "authenticated"
    RECONNECTING = "reconnecting"
    FAILED = "failed"


_S = ConnectionState

ALLOWED_TRANSITIONS: Final[Mapping[ConnectionState, frozenset[ConnectionState]]] = MappingProxyType(
    {
        _S.DISCONNECTED: frozenset({_S.CONNECTING}),
        _S.CONNECTING: frozenset({_S.CONNECTED, _S.RECONNECTING, _S.FAILED, _S.DISCONNECTED}),
        # CONNECTED -> CONNECTING: the first connection's authentication was
        # refused with a retryable error, and the next attempt begins.
        _S.CONNECTED: frozenset(
            {_S.AUTHENTICATED, _S.CONNECTING, _S.RECONNECTING, _S.FAILED, _S.DISCONNECTED}
        ),
        _S.AUTHENTICATED: frozenset({_S.RECONNECTING, _S.DISCONNECTED, _S.FAILED}),
        _S.RECONNECTING: frozenset({_S.CONNECTED, _S.FAILED, _S.DISCONNECTED}),
        # A failed client can be started again by an explicit connect().
        _S.FAILED: frozenset({_S.CONNECTING, _S.DISCONNECTED}),
    }
)
"""Which state may follow which; anything else is a bug in the client."""
