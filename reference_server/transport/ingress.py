"""Ingress: what a Socket.IO client sends, screened before it is decoded, then dispatched.

Event packets are screened (size, rate) on their encoded text, then decoded
and handed to the hub with their ack id: the protocol answers a refused
request in its ack when the client asked for one and as an ``error`` event
otherwise, which python-socketio's handler API cannot tell apart. Sizes are
checked here against the protocol limit while the transports are given a
larger one (``ServerSettings.transport_message_limit``), so an oversized
message is answered on a live connection instead of closing it. Binary
packets are refused (the protocol is JSON only). ACK packets answer our own
``requires_ack`` messages and go to the socket's outbox.

The hook that calls into this lives in :mod:`.socketio_server` (its table).
"""

from __future__ import annotations

from typing import Any

from socketio import packet as sio_packet

from client_sdk.protocol import ErrorCode, ProtocolError

from ..connections import Connection
from ..hub import Hub
from ..screening import IngressScreen
from .outbox import Outbox

__all__ = ["NAMESPACE", "Ingress", "ack_id_of"]

NAMESPACE = "/"


def ack_id_of(encoded: str) -> int | None:
    """The ack id of an encoded EVENT packet (``2[/nsp,][id]payload``), read without decoding."""
    i = 1
    if encoded[i : i + 1] == "/":
        comma = encoded.find(",", i)
        if comma < 0:
            return None
        i = comma + 1
    j = i
    while j < len(encoded) and encoded[j].isdigit() and j - i < 16:
        j += 1
    return int(encoded[i:j]) if j > i else None


class Ingress:
    """Screens and dispatches one socket's packets."""

    def __init__(self, hub: Hub, screen: IngressScreen) -> None:
        self._hub = hub
        self._screen = screen

    async def event(self, connection: Connection, data: str) -> None:
        """An EVENT packet (``2...``): screened, decoded, dispatched or refused."""
        if connection.closing:
            return
        size = len(data) if data.isascii() else len(data.encode())
        ack_id = ack_id_of(data)
        if not await self._screen.passes(connection, size, ack_id):
            return
        try:
            pkt = sio_packet.Packet(encoded_packet=data)
        except Exception:
            error = ProtocolError(ErrorCode.INVALID_MESSAGE, "malformed Socket.IO packet")
            await self._hub.refuse(connection, error, ack_id)
            return
        if (pkt.namespace or NAMESPACE) != NAMESPACE:
            return
        args = pkt.data if isinstance(pkt.data, list) else []
        if not args:
            error = ProtocolError(ErrorCode.INVALID_MESSAGE, "event without a name")
            await self._hub.refuse(connection, error, pkt.id)
            return
        await self._hub.dispatch(connection, args[0], args[1:], pkt.id)

    async def binary(self, connection: Connection, data: str) -> None:
        """A BINARY_EVENT (``5...``): refused without keeping state (attachments are dropped)."""
        if not await self._screen.passes(connection, len(data), None):
            return
        error = ProtocolError(ErrorCode.INVALID_MESSAGE, "binary payloads are not accepted")
        await self._hub.refuse(connection, error, None)

    def ack(self, outbox: Outbox, data: str) -> None:
        """An ACK packet (``3[id][...]``) for one of our ``requires_ack`` messages."""
        try:
            pkt = sio_packet.Packet(encoded_packet=data)
        except Exception:
            self._hub.stats.record_error()
            return
        if (pkt.namespace or NAMESPACE) == NAMESPACE and isinstance(pkt.id, int):
            args: Any = pkt.data if isinstance(pkt.data, list) else []
            outbox.acknowledged(pkt.id, args)
