"""``--log-format json``: one JSON object per line, with the ids of the socket it is about."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator

import pytest

from reference_server.app import ReferenceServer
from reference_server.cli import _parser, _settings
from reference_server.config import ServerSettings
from reference_server.logformat import JsonFormatter

from ..conftest import ServerFactory, SioClient, eventually


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The server's records, as ``--log-format json`` writes them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("reference_server")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_each_line_is_an_object_with_the_ids_that_apply(
    json_log: io.StringIO,
    make_server: ServerFactory,
    make_client: Callable[[ReferenceServer], SioClient],
) -> None:
    server = await make_server(log_broadcast_events=True)
    client = make_client(server)
    await client.connect()
    await client.authenticate("ana", "org_a")
    await client.call("subscribe", {"channels": ["kpi"]})
    await client.close()

    async def logged_disconnect() -> bool:
        return any(str(line["event"]).startswith("disconnected") for line in lines(json_log))

    await eventually(logged_disconnect)
    records = lines(json_log)
    for record in records:
        assert {"timestamp", "level", "logger", "event"} <= record.keys()
        assert str(record["timestamp"]).endswith("Z")
    authenticated = next(r for r in records if str(r["event"]).startswith("authenticated"))
    assert authenticated["level"] == "info"
    assert authenticated["logger"] == "reference_server.connections"
    assert authenticated["user_id"] == "ana"
    assert authenticated["organization_id"] == "org_a"
    assert authenticated["socket_id"]
    subscribed = next(r for r in records if "subscribed to" in str(r["event"]))
    assert subscribed["socket_id"] == authenticated["socket_id"]
    disconnected = next(r for r in records if str(r["event"]).startswith("disconnected"))
    assert disconnected["user_id"] == "ana"


async def test_a_broadcast_line_carries_its_message_id(
    json_log: io.StringIO, make_server: ServerFactory
) -> None:
    from client_sdk.protocol import BroadcastRequest, ServerEvent

    from ..conftest import kpi

    server = await make_server(log_broadcast_events=True)
    result = await server.publisher.publish(
        BroadcastRequest(event=ServerEvent.KPI_UPDATE, data=kpi())
    )
    [line] = [r for r in lines(json_log) if r["logger"] == "reference_server.broadcasts"]
    assert line["message_id"] == result.message_id
    assert line["organization_id"] == "org_a"


def test_the_command_line_flag_chooses_the_format() -> None:
    # Every setting is a flag of serve, generated from the settings model.
    args = _parser(ServerSettings).parse_args(["serve", "--log-format", "json"])
    assert _settings(args, ServerSettings).log_format == "json"
