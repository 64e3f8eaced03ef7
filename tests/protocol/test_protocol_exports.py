"""The public surface of client_sdk.protocol is deliberate: pinned and documented."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import client_sdk.protocol
import client_sdk.protocol.schema

EXPORTS = [
    "ALLOWED_TRANSITIONS",
    "API_BASE",
    "AlertPayload",
    "AlertStatus",
    "AttendanceCheckPayload",
    "AttendancePayload",
    "AuthSuccess",
    "AuthenticateRequest",
    "BROADCAST_KINDS",
    "BacklogItem",
    "BacklogPayload",
    "BacklogSnapshotPayload",
    "Batch",
    "BridgeFrame",
    "BroadcastKind",
    "BroadcastRequest",
    "BroadcastResult",
    "BroadcastTarget",
    "CHANNEL_EVENTS",
    "CONCRETE_CHANNELS",
    "Capability",
    "Channel",
    "ClientEvent",
    "ConnectionDetail",
    "ConnectionInfo",
    "ConnectionList",
    "ConnectionState",
    "ConnectionStatus",
    "ControlEvent",
    "DEFAULT_RETRYABLE",
    "DisconnectResult",
    "EVENT_CHANNEL",
    "EVENT_PAYLOADS",
    "Envelope",
    "Epoch",
    "ErrorCode",
    "ErrorInfo",
    "FailureAck",
    "HTTP_STATUS",
    "HeadcountGap",
    "Health",
    "IDENTIFIER_PATTERN",
    "Identifier",
    "KpiPayload",
    "MaintenanceWindow",
    "MetricAlertPayload",
    "ORG_ROOM_PREFIX",
    "PROTOCOL_VERSION",
    "Payload",
    "PingAck",
    "PingRequest",
    "Pong",
    "Priority",
    "ProtocolError",
    "ReplayResult",
    "Room",
    "RoomInfo",
    "RoomList",
    "RoomType",
    "RoomsNotice",
    "Scope",
    "ScopedPayload",
    "Seq",
    "ServerEvent",
    "ServerInfo",
    "ServerLimits",
    "ServiceLevel",
    "Severity",
    "SlaRisk",
    "Stats",
    "StoreInfo",
    "StreamName",
    "StreamPosition",
    "SubscribeAck",
    "SubscribeRequest",
    "SystemLevel",
    "SystemPayload",
    "Timestamp",
    "UnsubscribeAck",
    "UnsubscribeRequest",
    "Utilization",
    "ack_frame",
    "build_envelope",
    "delivery_rooms",
    "event_frame",
    "expand_channels",
    "format_timestamp",
    "is_identifier",
    "org_room",
    "parse_payload",
    "parse_room",
    "parse_stream",
    "stream_name",
    "subscription_room",
    "utc_now",
]

SCHEMA_EXPORTS = [
    "JSON_SCHEMA_DIALECT",
    "README_NAME",
    "check_schemas",
    "main",
    "payload_schema_name",
    "readme",
    "render",
    "schemas",
    "write_schemas",
]


def test_exports_are_pinned() -> None:
    assert sorted(client_sdk.protocol.__all__) == EXPORTS
    assert len(set(client_sdk.protocol.__all__)) == len(client_sdk.protocol.__all__)
    assert sorted(client_sdk.protocol.schema.__all__) == SCHEMA_EXPORTS


@pytest.mark.parametrize(
    ("module", "name"),
    [(client_sdk.protocol, n) for n in EXPORTS]
    + [(client_sdk.protocol.schema, n) for n in SCHEMA_EXPORTS],
)
def test_export_exists_and_is_documented(module: object, name: str) -> None:
    obj = getattr(module, name)
    if inspect.isclass(obj) or inspect.isfunction(obj):
        doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
        assert doc, f"{name} has no docstring"
        # dataclasses invent "Name(field: type, ...)" when the class has none
        assert not doc.startswith(f"{name}("), f"{name} has no docstring"


def test_protocol_package_is_pure() -> None:
    code = (
        "import sys, client_sdk.protocol, client_sdk.protocol.schema\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'socketio', 'engineio', 'asyncio', 'aiohttp'})\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True)
