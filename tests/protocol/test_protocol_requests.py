"""Client requests and answers (protocol sections 3, 4, 6 and 7)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from client_sdk.protocol import (
    PROTOCOL_VERSION,
    AuthenticateRequest,
    AuthSuccess,
    BridgeFrame,
    Channel,
    PingAck,
    PingRequest,
    ReplayResult,
    Scope,
    StreamPosition,
    SubscribeAck,
    SubscribeRequest,
    UnsubscribeAck,
    UnsubscribeRequest,
    ack_frame,
    event_frame,
    parse_stream,
    stream_name,
)


def test_protocol_version() -> None:
    assert PROTOCOL_VERSION == 1


def test_authenticate_example() -> None:
    request = AuthenticateRequest.model_validate(
        {
            "user_id": "user_123",
            "organization_id": "org_123",
            "token": "<optional JWT>",
            "capabilities": ["batch", "replay"],
        }
    )
    assert request.capabilities == ["batch", "replay"]
    minimal = AuthenticateRequest.model_validate({"user_id": "u", "organization_id": "o"})
    assert (minimal.token, minimal.capabilities) == (None, [])


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (SubscribeRequest, {"channels": ["kpi"], "queue": "support"}),
        (SubscribeRequest, {"channels": ["kpi"], "department": "d"}),
        (SubscribeRequest, {"channels": ["kpi"], "org_id": "o"}),
        (UnsubscribeRequest, {"channels": ["kpi"], "queue": "support"}),
        (AuthenticateRequest, {"user_id": "u", "organization_id": "o", "password": "x"}),
        (PingRequest, {"timestamp": 1, "extra": True}),
        (BridgeFrame, {"event": "authenticate", "data": {}, "ack": True}),
    ],
)
def test_unknown_fields_rejected(model: type[Any], data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    assert {e["type"] for e in caught.value.errors()} == {"extra_forbidden"}


def test_subscribe_example() -> None:
    request = SubscribeRequest.model_validate(
        {
            "channels": ["kpi"],
            "organization_id": "org_123",
            "department_id": "dept_456",
            "queue_name": "support",
            "since": {"kpi:org_123": 1041},
        }
    )
    assert request.channels == [Channel.KPI]
    assert request.since == {"kpi:org_123": 1041}
    assert request.snapshot is False
    assert request.scope == Scope("org_123", "dept_456", "support")
    assert request.scope.within("other") == request.scope


def test_subscribe_organization_defaults_to_authenticated() -> None:
    request = SubscribeRequest.model_validate({"channels": ["all"], "queue_name": "q"})
    assert request.scope.within("org_9") == Scope("org_9", queue_name="q")


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"channels": []},
        {"channels": "kpi"},
        {"channels": ["bogus"]},
        {"channels": ["kpi"], "since": {"kpi:o": -1}},
        {"channels": ["kpi"], "since": {"kpi:o": "1"}},
        {"channels": ["kpi"], "since": {"kpi:o": True}},
        {"channels": ["kpi"], "since": [1]},
    ],
)
def test_subscribe_rejects(data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        SubscribeRequest.model_validate(data)


@pytest.mark.parametrize(
    "data",
    [
        {"channels": ["kpi"]},
        {"channels": ["kpi"], "queue_name": "support"},
        {"rooms": ["kpi:org:o"]},
        {"channels": []},
    ],
)
def test_unsubscribe_accepts_channels_or_rooms(data: dict[str, Any]) -> None:
    UnsubscribeRequest.model_validate(data)


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"queue_name": "support"},
        {"channels": ["kpi"], "rooms": ["kpi:org:o"]},
        {"channels": None, "rooms": None},
    ],
)
def test_unsubscribe_needs_channels_xor_rooms(data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="either 'channels'"):
        UnsubscribeRequest.model_validate(data)


def test_requests_are_frozen() -> None:
    request = SubscribeRequest(channels=[Channel.KPI])
    with pytest.raises(ValidationError):
        request.queue_name = "q"  # type: ignore[misc]


def test_authenticate_success_ack_example() -> None:
    ack = AuthSuccess.model_validate(
        {
            "success": True,
            "user_id": "user_123",
            "organization_id": "org_123",
            "socket_id": "...",
            "server_time": "2026-11-25T10:30:00.000Z",
            "server": {
                "name": "...",
                "version": "...",
                "protocol": 1,
                "capabilities": ["acks", "batch", "replay"],
                "limits": {
                    "max_message_size_bytes": 1048576,
                    "rate_limit_messages_per_second": 100,
                },
            },
        }
    )
    assert ack.server.limits.max_message_size_bytes == 1048576
    assert ack.model_dump(mode="json")["server_time"] == "2026-11-25T10:30:00.000Z"


def test_answers_keep_unknown_fields_and_check_success() -> None:
    ack = SubscribeAck.model_validate(
        {
            "success": True,
            "subscriptions": ["org:o", "kpi:org:o"],
            "replay": {"kpi:o": {"replayed": 3, "complete": False}},
            "future": 1,
        }
    )
    assert ack.replay is not None
    assert ack.replay["kpi:o"].complete is False
    assert ack.model_extra == {"future": 1}
    with pytest.raises(ValidationError):
        UnsubscribeAck.model_validate({"success": False, "subscriptions": []})


def test_ping_and_pong() -> None:
    assert PingRequest.model_validate({}).timestamp is None
    assert PingRequest.model_validate({"timestamp": 1732530600123}).timestamp == 1732530600123
    ack = PingAck.model_validate({"timestamp": 5, "server_time": "2026-11-25T10:30:00Z"})
    assert ack.success is True
    assert ack.model_dump(mode="json")["server_time"] == "2026-11-25T10:30:00.000Z"


def test_bridge_frames() -> None:
    frame = BridgeFrame.model_validate_json(
        '{"event":"authenticate","data":{"user_id":"user_123","organization_id":"org_123"}}'
    )
    assert frame.id is None
    assert AuthenticateRequest.model_validate(frame.data).user_id == "user_123"
    assert BridgeFrame.model_validate({"event": "client:ping", "id": 7}).id == 7
    assert ack_frame(7, {"success": True}) == {"event": "ack", "id": 7, "data": {"success": True}}
    assert event_frame("kpi:update", {"id": "m"}) == {"event": "kpi:update", "data": {"id": "m"}}


@pytest.mark.parametrize(
    "data",
    [{"data": {}}, {"event": ""}, {"event": "x", "id": -1}, {"event": "x", "data": [1]}],
)
def test_bridge_frame_rejects(data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        BridgeFrame.model_validate(data)


def test_since_takes_a_seq_or_a_position_per_stream() -> None:
    request = SubscribeRequest.model_validate(
        {
            "channels": ["kpi", "alerts"],
            "since": {"kpi:org_1": 7, "alerts:org_1": {"seq": 3, "epoch": "e1"}},
        }
    )
    assert request.since == {"kpi:org_1": 7, "alerts:org_1": StreamPosition(seq=3, epoch="e1")}
    assert request.to_wire()["since"] == {"kpi:org_1": 7, "alerts:org_1": {"seq": 3, "epoch": "e1"}}


@pytest.mark.parametrize(
    "since",
    [
        {"kpi:org_1": "7"},
        {"kpi:org_1": True},
        {"kpi:org_1": -1},
        {"kpi:org_1": {"seq": 3}},
        {"kpi:org_1": {"seq": 3, "epoch": ""}},
        {"kpi:org_1": {"seq": 3, "epoch": "e", "extra": 1}},
        {f"kpi:org_{n}": 1 for n in range(17)},
    ],
)
def test_since_rejects_what_is_no_position(since: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SubscribeRequest.model_validate({"channels": ["kpi"], "since": since})


def test_stream_names() -> None:
    assert stream_name(Channel.KPI, "org_1") == "kpi:org_1"
    assert parse_stream("alerts:org_1") == (Channel.ALERTS, "org_1")
    for bad in ("kpi", "all:org_1", "kpi:", "kpi:a:b", "bogus:org"):
        with pytest.raises(ValueError, match="stream"):
            parse_stream(bad)
    with pytest.raises(ValueError, match="all"):
        stream_name(Channel.ALL, "org_1")


def test_replay_result_of_servers_with_and_without_replay() -> None:
    full = ReplayResult.model_validate({"replayed": 2, "complete": True, "epoch": "e", "seq": 9})
    assert (full.replayed, full.complete, full.epoch, full.seq) == (2, True, "e", 9)
    bare = ReplayResult.model_validate({"replayed": 0, "complete": False})
    assert (bare.epoch, bare.seq) == (None, None)
