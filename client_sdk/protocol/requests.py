"""Client requests and the server's answers (protocol sections 3, 4 and 7).

Requests forbid unknown fields: a misspelt ``queue`` instead of
``queue_name`` must fail loudly rather than silently widen a subscription to
the whole organization. Answers, read by clients, keep unknown fields.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .events import Channel
from .identifiers import Identifier
from .rooms import Scope
from .streams import ReplayResult, Seq, StreamName, StreamPosition
from .timestamps import Timestamp

__all__ = [
    "PROTOCOL_VERSION",
    "AuthSuccess",
    "AuthenticateRequest",
    "PingAck",
    "PingRequest",
    "Pong",
    "RoomsNotice",
    "ServerInfo",
    "ServerLimits",
    "SubscribeAck",
    "SubscribeRequest",
    "UnsubscribeAck",
    "UnsubscribeRequest",
]

PROTOCOL_VERSION = 1
"""The protocol version spoken here (``protocol`` in the authenticate ack and ``/health``)."""

CapabilityName = Annotated[str, Field(min_length=1, max_length=64)]


class _Request(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def to_wire(self) -> dict[str, Any]:
        """The JSON object a client sends: fields left at their defaults are omitted."""
        return self.model_dump(mode="json", exclude_defaults=True)


class _Answer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")


class AuthenticateRequest(_Request):
    """``authenticate``, or the handshake ``auth`` object."""

    user_id: Identifier
    organization_id: Identifier
    token: Annotated[str, Field(max_length=16384)] | None = None
    capabilities: Annotated[list[CapabilityName], Field(max_length=32)] = []


class _Filter(_Request):
    # Flat on the wire (section 4); :attr:`scope` is the protocol's form of it.
    organization_id: Identifier | None = None
    department_id: Identifier | None = None
    queue_name: Identifier | None = None

    @property
    def scope(self) -> Scope:
        """The filter (no organization: the authenticated one, see :meth:`Scope.within`)."""
        return Scope(self.organization_id, self.department_id, self.queue_name)


class SubscribeRequest(_Filter):
    """``subscribe``: join one room per channel for the filter."""

    channels: Annotated[list[Channel], Field(min_length=1, max_length=16)]
    # Strict: "1041" or true is not a sequence number (nor is it in the JSON Schema).
    since: Annotated[dict[StreamName, Seq | StreamPosition], Field(max_length=16)] | None = None
    """The last message seen of each stream: its ``seq``, or ``{"seq", "epoch"}`` (section 6)."""
    snapshot: bool = False
    """Send the latest message of each ``(event, target)`` of the filter first."""

    @classmethod
    def of(cls, channels: Iterable[Channel], scope: Scope, **options: Any) -> SubscribeRequest:
        """The request for ``channels`` with the filter ``scope`` (and ``since``, ``snapshot``)."""
        return cls(
            channels=list(channels),
            organization_id=scope.organization_id,
            department_id=scope.department_id,
            queue_name=scope.queue_name,
            **options,
        )


class UnsubscribeRequest(_Filter):
    """``unsubscribe``: the same filter as ``subscribe``, or explicit ``rooms``."""

    # The "channels xor rooms" rule below, stated in the JSON Schema too.
    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"required": ["channels"], "properties": {"channels": {"type": "array"}}},
                {"required": ["rooms"], "properties": {"rooms": {"type": "array"}}},
            ]
        }
    )

    channels: Annotated[list[Channel], Field(max_length=16)] | None = None
    rooms: Annotated[list[Annotated[str, Field(max_length=600)]], Field(max_length=256)] | None = (
        None
    )

    @model_validator(mode="after")
    def _channels_or_rooms(self) -> UnsubscribeRequest:
        if (self.channels is None) == (self.rooms is None):
            raise ValueError("give either 'channels' (with a filter) or 'rooms'")
        return self


class PingRequest(_Request):
    """``client:ping``: ``timestamp`` is the client's clock, echoed back untouched."""

    timestamp: float | None = None


class ServerLimits(_Answer):
    """The limits a server announces at authentication."""

    max_message_size_bytes: int
    rate_limit_messages_per_second: int
    batch_window_ms: int | None = None
    """With capability ``batch``: how long messages are gathered into one batch (<= 100)."""
    batch_max_messages: int | None = None
    """With capability ``batch``: the most messages one ``batch`` event holds."""


class ServerInfo(_Answer):
    """Who the server is and what it can do."""

    name: str
    version: str
    protocol: int
    capabilities: list[str]
    limits: ServerLimits


class AuthSuccess(_Answer):
    """The success ack of ``authenticate``, also the body of ``authenticated``."""

    success: Literal[True] = True
    user_id: str
    organization_id: str
    socket_id: str
    server_time: Timestamp
    server: ServerInfo


class SubscribeAck(_Answer):
    """The success ack of ``subscribe``: every room the socket is in now."""

    success: Literal[True] = True
    subscriptions: list[str]
    replay: dict[str, ReplayResult] | None = None


class UnsubscribeAck(_Answer):
    """The success ack of ``unsubscribe``: the rooms that remain."""

    success: Literal[True] = True
    subscriptions: list[str]


class RoomsNotice(_Answer):
    """``client:subscribe`` and ``client:unsubscribe``: rooms added or left."""

    rooms: list[str]


class Pong(_Answer):
    """``client:pong``: the client's timestamp echoed with the server's clock."""

    timestamp: float | None = None
    server_time: Timestamp


class PingAck(Pong):
    """The ack of ``client:ping``: the pong with ``success``."""

    success: Literal[True] = True
