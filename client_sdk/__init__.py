"""intraday-live client SDK: typed, reconnecting access to the Intraday live-updates protocol.

Start with :class:`IntradayClient` and :class:`ClientConfig`; the wire
contract itself is in :mod:`client_sdk.protocol`.
"""

import logging
from importlib import import_module
from typing import TYPE_CHECKING, Any

# A library logs, the application decides where it goes: without this, Python's
# last-resort handler would print the SDK's warnings on stderr on its own.
logging.getLogger("client_sdk").addHandler(logging.NullHandler())

# The protocol stays importable without socketio, aiohttp or asyncio: the
# client and the rest load on first use (PEP 562).
if TYPE_CHECKING:
    from ._client import ClientStatistics, IntradayClient
    from ._messages import Message
    from ._subscriptions import Subscription
    from .admin import AdminClient
    from .blocking import BlockingClient
    from .config import ClientConfig, TokenProvider
    from .exceptions import (
        AuthenticationError,
        ClientClosedError,
        ConnectionLimitError,
        ConnectionLostError,
        InternalServerError,
        IntradayError,
        InvalidMessageError,
        MalformedMessageError,
        MessageTooLargeError,
        RateLimitedError,
        ReconnectFailedError,
        RequestTimeoutError,
        RoomFullError,
        RoomNotFoundError,
        ServerError,
        SubscriptionFailedError,
        UnauthorizedError,
    )
    from .hooks import Backpressure, ConnectionHealth, LiveHooks
    from .protocol import PROTOCOL_VERSION, Channel, ConnectionState, Scope, ServerEvent

_LAZY: dict[str, str] = {
    "Backpressure": ".hooks",
    "BlockingClient": ".blocking",
    "ConnectionHealth": ".hooks",
    "LiveHooks": ".hooks",
    "AdminClient": ".admin",
    "AuthenticationError": ".exceptions",
    "Channel": ".protocol",
    "ClientClosedError": ".exceptions",
    "ClientConfig": ".config",
    "ClientStatistics": "._client",
    "ConnectionLimitError": ".exceptions",
    "ConnectionLostError": ".exceptions",
    "ConnectionState": ".protocol",
    "InternalServerError": ".exceptions",
    "IntradayClient": "._client",
    "IntradayError": ".exceptions",
    "InvalidMessageError": ".exceptions",
    "MalformedMessageError": ".exceptions",
    "Message": "._messages",
    "MessageTooLargeError": ".exceptions",
    "PROTOCOL_VERSION": ".protocol",
    "RateLimitedError": ".exceptions",
    "ReconnectFailedError": ".exceptions",
    "RequestTimeoutError": ".exceptions",
    "RoomFullError": ".exceptions",
    "RoomNotFoundError": ".exceptions",
    "Scope": ".protocol",
    "ServerError": ".exceptions",
    "ServerEvent": ".protocol",
    "Subscription": "._subscriptions",
    "SubscriptionFailedError": ".exceptions",
    "TokenProvider": ".config",
    "UnauthorizedError": ".exceptions",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'client_sdk' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "PROTOCOL_VERSION",
    "AdminClient",
    "AuthenticationError",
    "Backpressure",
    "BlockingClient",
    "Channel",
    "ClientClosedError",
    "ClientConfig",
    "ClientStatistics",
    "ConnectionHealth",
    "ConnectionLimitError",
    "ConnectionLostError",
    "ConnectionState",
    "InternalServerError",
    "IntradayClient",
    "IntradayError",
    "InvalidMessageError",
    "LiveHooks",
    "MalformedMessageError",
    "Message",
    "MessageTooLargeError",
    "RateLimitedError",
    "ReconnectFailedError",
    "RequestTimeoutError",
    "RoomFullError",
    "RoomNotFoundError",
    "Scope",
    "ServerError",
    "ServerEvent",
    "Subscription",
    "SubscriptionFailedError",
    "TokenProvider",
    "UnauthorizedError",
]
