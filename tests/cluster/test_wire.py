"""The messages between nodes: each kind survives its codec, and nothing else decodes.

A frame the store's append script publishes (the head, the envelope with its
``seq`` and ``epoch``, the tail) must decode to the delivery the node built;
python-socketio's own manager commands, pickles and broken frames must not
decode at all (a node acts on nothing else). The committed JSON Schema of
the headers (``docs/schema/cluster/wire.json``) must match the models.
"""

from __future__ import annotations

import asyncio
import json
import pickle
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from pydantic import ValidationError

from client_sdk.protocol import Scope, ServerEvent
from reference_server.cluster import wire
from reference_server.cluster.fanout import CHANNEL, PRESENCE
from reference_server.store.redis import RedisStore
from tests.processes import RedisProcess

SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "schema" / "cluster" / "wire.json"
REGENERATE = "run `python -m reference_server.cluster.wire docs/schema/cluster/wire.json`"

ENVELOPE: dict[str, Any] = {
    "id": "m1",
    "event": "kpi:update",
    "timestamp": "2026-11-25T10:30:00Z",
    "target": {"organization_id": "org_a", "department_id": None, "queue_name": "support"},
    "data": {"organization_id": "org_a", "text": "line\nbreak \u00e9 \u0000"},
}


def _delivery(**changes: Any) -> wire.Delivery:
    fields: dict[str, Any] = {
        "origin": "n0",
        "event": ServerEvent.KPI_UPDATE,
        "target": wire.WireTarget.of(Scope("org_a", None, "support")),
        "stream": "kpi:org_a",
        "requires_ack": True,
        "envelope": ENVELOPE,
    }
    return wire.Delivery(**{**fields, **changes})


@pytest.mark.parametrize(
    "message",
    [
        _delivery(),
        _delivery(socket_ids=("s1", "s2"), stream=None, requires_ack=False),
        _delivery(target=wire.WireTarget(), event=ServerEvent.SYSTEM_MAINTENANCE),
        wire.Delivered(message_id="m1", node="n1", recipients=40),
        wire.Kick(socket_id="s1"),
    ],
    ids=["delivery", "to-sockets", "admin", "delivered", "kick"],
)
def test_every_kind_survives_its_codec(message: wire.Delivery | wire.Delivered | wire.Kick) -> None:
    text = wire.encode(message)
    assert wire.decode(text) == message
    assert wire.decode(text.encode()) == message
    if isinstance(message, wire.Delivery):
        assert wire.decode(text).envelope == ENVELOPE  # the envelope travels too


def test_a_frame_published_by_the_store_script_decodes_to_the_delivery_with_its_place() -> None:
    delivery = _delivery()
    head, tail = wire.store_frame(delivery)
    stored = json.dumps(ENVELOPE, separators=(",", ":"))
    # What the Lua script of RedisStore.append_published publishes.
    published = head + '{"seq":7,"epoch":"e1",' + stored[1:] + tail
    decoded = wire.decode(published)
    assert isinstance(decoded, wire.Delivery)
    assert decoded.envelope == {"seq": 7, "epoch": "e1", **ENVELOPE}
    assert decoded.model_copy(update={"envelope": ENVELOPE}) == delivery


def test_a_frame_of_several_messages_decodes_to_each_in_order() -> None:
    messages = [
        _delivery(envelope={**ENVELOPE, "id": "m1"}),
        wire.Delivered(message_id="m0", node="n1", recipients=3),
        _delivery(envelope={**ENVELOPE, "id": "m2"}, requires_ack=False),
        wire.Kick(socket_id="s1"),
    ]
    frame = wire.FRAME_SEPARATOR.join(wire.encode(m) for m in messages)
    assert wire.decode_all(frame) == messages
    assert wire.decode_all(frame.encode()) == messages
    with pytest.raises(wire.WireError):
        wire.decode(frame)  # one message was expected


def test_a_frame_with_one_part_that_is_not_ours_is_refused_whole() -> None:
    good = wire.encode(_delivery())
    for bad in ("not json", json.dumps(SOCKETIO_COMMAND), good.partition("\n")[0]):
        with pytest.raises(wire.WireError):
            wire.decode_all(wire.FRAME_SEPARATOR.join([good, bad]))


@pytest.mark.timeout(60)
async def test_the_store_script_publishes_a_group_as_one_frame_in_seq_order(
    tmp_path: Path,
) -> None:
    # One PUBLISH for the messages of one script (it was one each, most of the script's
    # Redis work): a node reading the channel gets them all, in seq order, with their place.
    async with RedisProcess(tmp_path) as redis_process:
        listener: Any = aioredis.from_url(redis_process.url)
        pubsub = listener.pubsub()
        await pubsub.subscribe(CHANNEL, PRESENCE)
        store = RedisStore(redis_process.url, max_messages=100, max_age_seconds=60)
        try:
            deliveries = [_delivery(envelope={**ENVELOPE, "id": f"m{n}"}) for n in range(3)]
            group = [({**d.envelope}, *wire.store_frame(d)) for d in deliveries]
            published = await store.append_published("kpi:org_a", group, CHANNEL, PRESENCE)
            assert (published.listeners, published.confirmed) == (1, True)
            await listener.publish(CHANNEL, b"end")  # after the script: read after its frames
            frames = []
            while (frame := await _next_message(pubsub, 5.0)) != b"end":
                frames.append(frame)
            assert len(frames) == 1
            decoded = wire.decode_all(frames[0])
            assert [m.envelope["id"] for m in decoded] == ["m0", "m1", "m2"]  # type: ignore[union-attr]
            assert [m.envelope["seq"] for m in decoded] == [1, 2, 3]  # type: ignore[union-attr]
            epochs = {m.envelope["epoch"] for m in decoded}  # type: ignore[union-attr]
            assert epochs == {group[0][0]["epoch"]}
        finally:
            await store.close()
            await pubsub.aclose()
            await listener.aclose()


async def _next_message(pubsub: Any, timeout: float) -> bytes:
    """The data of the next message published on a channel ``pubsub`` listens to."""
    async with asyncio.timeout(timeout):
        while True:
            frame = await pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
            if frame is not None and frame.get("type") == "message":
                data: bytes = frame["data"]
                return data


def test_messages_are_frozen() -> None:
    with pytest.raises(ValidationError):
        wire.Kick(socket_id="s1").socket_id = "s2"  # type: ignore[misc]


SOCKETIO_COMMAND = {
    "method": "enter_room",
    "sid": "abc",
    "room": "kpi:org:org_b",
    "namespace": "/",
    "host_id": "intruder",
}


@pytest.mark.parametrize(
    "frame",
    [
        json.dumps(SOCKETIO_COMMAND),
        pickle.dumps(SOCKETIO_COMMAND),
        json.dumps({"method": "emit", "host_id": "intraday-live", "intraday": {"kind": "deliver"}}),
        b"\xff\xfe",
        "not json",
        "[1, 2]",
        wire.encode(_delivery()).partition("\n")[0],  # a delivery without its envelope
        wire.encode(wire.Kick(socket_id="s1")) + "\n{}",  # an envelope on a kick
        wire.encode(_delivery()).partition("\n")[0] + "\n[]",  # an envelope that is no object
        wire.encode(_delivery()).partition("\n")[0] + '\n{"event": "kpi:update"}',  # no id
        wire.encode(_delivery()).partition("\n")[0] + "\n{}",  # an empty envelope
        '{"kind": "kick", "socket_id": "s1", "room": "kpi:org:org_b"}',  # a field too many
        '{"kind": "delivered", "message_id": "m", "node": "n", "recipients": -1}',
    ],
    ids=[
        "socketio-json",
        "socketio-pickle",
        "old-frame",
        "not-utf8",
        "not-json",
        "not-object",
        "no-envelope",
        "kick-with-envelope",
        "envelope-not-object",
        "envelope-without-id",
        "empty-envelope",
        "extra-field",
        "negative-count",
    ],
)
def test_anything_but_our_messages_is_refused(frame: str | bytes) -> None:
    with pytest.raises(wire.WireError):
        wire.decode(frame)


def test_the_committed_schema_matches_the_models() -> None:
    assert SCHEMA.read_text(encoding="utf-8") == wire.render_schema(), REGENERATE


def test_the_schema_describes_every_kind_and_no_envelope() -> None:
    schema = wire.wire_schema()
    kinds = {
        d["properties"]["kind"]["const"]
        for d in schema["$defs"].values()
        if "kind" in d.get("properties", {})
    }
    assert kinds == {"delivery", "delivered", "kick"}
    assert "envelope" not in schema["$defs"]["Delivery"]["properties"]
