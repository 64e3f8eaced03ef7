"""The transport's packet class reads every packet as python-socketio's own parser does.

Its shortcut for events of the default namespace (``2[...]``) must give the
same type, namespace, id, data and attachment count as the general parser,
and leave every other packet to it.
"""

from __future__ import annotations

from typing import Any

import pytest
import socketio.packet

from client_sdk._transport import _Packet


class _Reference(socketio.packet.Packet):  # type: ignore[misc]  # python-socketio is untyped
    json = _Packet.json  # the same JSON reader: only the parsing around it is compared


PACKETS = [
    '2["kpi:update",{"target":{"queue_name":"queue-1"},"seq":-1}]',
    '2["client:pong"]',
    "2[]",
    '3[{"success":true}]',
    '31[{"success":true}]',
    '212["kpi:update",1]',
    '2/admin,["e"]',
    '2/admin,5["e"]',
    '0{"sid":"abc"}',
    "0",
    "1",
    "2",
    '4{"message":"refused"}',
    '51-["e",{"_placeholder":true,"num":0}]',
    "6[1]",
    "9[1]",
]


def _read(packet_class: type[Any], encoded: str) -> object:
    try:
        packet = packet_class(encoded_packet=encoded)
    except Exception as exc:
        return type(exc)
    return (
        packet.packet_type,
        packet.namespace,
        packet.id,
        packet.data,
        packet.attachment_count,
    )


@pytest.mark.parametrize("encoded", PACKETS)
def test_packet_reads_as_python_socketio_reads_it(encoded: str) -> None:
    assert _read(_Packet, encoded) == _read(_Reference, encoded)
