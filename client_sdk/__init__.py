"""intraday-live client SDK: typed, reconnecting access to the Intraday live-updates protocol.

Start with :class:`IntradayClient` and :class:`ClientConfig`; the wire
contract itself is in :mod:`client_sdk.protocol`.
"""

from .admin import AdminClient
from .client import ClientStatistics, IntradayClient
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
from .messages import Message
from .protocol import PROTOCOL_VERSION, Channel, ConnectionState, ServerEvent
from .subscriptions import Filter, Subscription

__all__ = [
    "PROTOCOL_VERSION",
    "AdminClient",
    "AuthenticationError",
    "Channel",
    "ClientClosedError",
    "ClientConfig",
    "ClientStatistics",
    "ConnectionLimitError",
    "ConnectionLostError",
    "ConnectionState",
    "Filter",
    "InternalServerError",
    "IntradayClient",
    "IntradayError",
    "InvalidMessageError",
    "MalformedMessageError",
    "Message",
    "MessageTooLargeError",
    "RateLimitedError",
    "ReconnectFailedError",
    "RequestTimeoutError",
    "RoomFullError",
    "RoomNotFoundError",
    "ServerError",
    "ServerEvent",
    "Subscription",
    "SubscriptionFailedError",
    "TokenProvider",
    "UnauthorizedError",
]
