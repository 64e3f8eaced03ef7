"""The recipients of a list of rooms are kept between broadcasts, and forgotten on any change.

``Registry.recipient_ids`` and the fan-out's outbox lists are caches: these
tests fail if a socket that joined, left or went away is still served (or
still skipped) from a stale answer.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from reference_server.connections import Connection, Registry
from reference_server.logformat import WEBSOCKET_LOGGER, configure_logging

from ..conftest import kpi

ROOM = "kpi:org:org_a"


def _connection(socket_id: str) -> Connection:
    link: Any = object()  # the registry never touches the link
    return Connection(socket_id=socket_id, link=link)


def test_recipients_are_the_same_set_until_a_socket_joins_leaves_or_goes() -> None:
    registry = Registry()
    a, b = _connection("a"), _connection("b")
    registry.add(a)
    registry.add(b)
    registry.join(a, ROOM)
    first = registry.recipient_ids([ROOM])
    assert first == {"a"}
    assert registry.recipient_ids([ROOM]) is first  # kept
    registry.join(b, ROOM)
    assert registry.recipient_ids([ROOM]) == {"a", "b"}
    registry.leave(a, ROOM)
    assert registry.recipient_ids([ROOM]) == {"b"}
    registry.remove("b")
    assert registry.recipient_ids([ROOM]) == frozenset()
    # A socket id names its socket, once it is registered.
    assert registry.recipient_ids(["a", "c"]) == {"a"}
    registry.add(_connection("c"))
    assert registry.recipient_ids(["a", "c"]) == {"a", "c"}


async def test_a_socket_that_joins_between_broadcasts_gets_the_next_one(authed, api) -> None:
    first = await authed("user_1", "org_a")
    await first.call("subscribe", {"channels": ["kpi"]})
    response = await api.post("/api/ws/broadcast/kpi", json=kpi("org_a"))
    assert response.json()["recipients"] == 1
    second = await authed("user_2", "org_a")
    await second.call("subscribe", {"channels": ["kpi"]})
    response = await api.post("/api/ws/broadcast/kpi", json=kpi("org_a"))
    assert response.json()["recipients"] == 2
    assert len(await second.wait_for("kpi:update")) == 1
    await first.close()
    response = await api.post("/api/ws/broadcast/kpi", json=kpi("org_a"))
    assert response.json()["recipients"] == 1
    assert len(await second.wait_for("kpi:update", count=2)) == 2
    assert len(first.received("kpi:update")) == 2


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Put the root logger and the WebSocket logger back as they were."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    websocket_filters = list(logging.getLogger(WEBSOCKET_LOGGER).filters)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger(WEBSOCKET_LOGGER).filters[:] = websocket_filters


@pytest.mark.parametrize("connection_lines", [True, False])
def test_connection_lines_off_drops_the_line_per_websocket(
    root_logging: None, connection_lines: bool
) -> None:
    stream = io.StringIO()
    configure_logging(logging.INFO, "text", stream, connection_lines=connection_lines)
    logger = logging.getLogger(WEBSOCKET_LOGGER)
    logger.info('%s - "WebSocket %s" [accepted]', "127.0.0.1:1", "/socket.io/")
    logger.info("connection open")
    logger.info("connection closed")
    logger.info("Uvicorn running on %s", "http://127.0.0.1:1")
    logger.warning("connection open")  # not INFO: kept
    text = stream.getvalue()
    assert ("[accepted]" in text) is connection_lines
    assert (text.count("connection open") == 2) is connection_lines
    assert ("connection closed" in text) is connection_lines
    assert "Uvicorn running on" in text
    assert "WARNING" in text
