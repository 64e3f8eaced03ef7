"""The AsyncAPI 3.0 document: valid per the official schema, complete, committed, served."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from client_sdk.protocol import EVENT_PAYLOADS, ClientEvent, ControlEvent
from client_sdk.protocol.asyncapi import asyncapi_document, render
from reference_server.app import ReferenceServer

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "asyncapi.json"
OFFICIAL = ROOT / "tests/interop/node_modules/@asyncapi/specs/schemas/3.0.0-without-$id.json"


@pytest.fixture(scope="module")
def official() -> jsonschema.Draft7Validator:
    """The AsyncAPI 3.0.0 JSON Schema of the npm package @asyncapi/specs (``npm ci``)."""
    if not OFFICIAL.is_file():
        reason = "needs @asyncapi/specs: run `npm ci` in tests/interop (make test does)"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and the AsyncAPI test {reason}")
        pytest.skip(reason)
    schema = json.loads(OFFICIAL.read_text())
    return jsonschema.Draft7Validator(schema)


def test_the_document_is_valid_asyncapi_3(official: jsonschema.Draft7Validator) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in official.iter_errors(COMMITTED_DOC)]
    assert errors == []


def test_the_official_schema_does_catch_a_broken_document(
    official: jsonschema.Draft7Validator,
) -> None:
    broken = copy.deepcopy(COMMITTED_DOC)
    next(iter(broken["operations"].values()))["action"] = "publish"  # AsyncAPI 2 wording
    assert not official.is_valid(broken)


def test_every_server_event_request_and_ack_is_described() -> None:
    names = {message["name"] for message in COMMITTED_DOC["components"]["messages"].values()}
    assert {event.value for event in EVENT_PAYLOADS} <= names
    assert len(EVENT_PAYLOADS) == 17
    for request in ClientEvent:
        assert request.value in names
        assert f"{request.value} ack" in names
    replies = [op for op in COMMITTED_DOC["operations"].values() if "reply" in op]
    assert len(replies) == len(ClientEvent)
    assert "bridge" in COMMITTED_DOC["channels"]


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item)]
    return []


def test_every_reference_resolves_inside_the_document() -> None:
    for ref in set(_refs(COMMITTED_DOC)):
        assert ref.startswith("#/"), ref
        node: Any = COMMITTED_DOC
        for part in ref[2:].split("/"):
            assert part in node, ref
            node = node[part]


def test_the_committed_document_is_current() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render(asyncapi_document()), (
        "docs/asyncapi.json is out of date: run python -m client_sdk.protocol.asyncapi FILE"
    )


def test_the_check_command_fails_on_drift(tmp_path: Path) -> None:
    stale = tmp_path / "asyncapi.json"
    stale.write_text("{}\n")
    command = [sys.executable, "-m", "client_sdk.protocol.asyncapi", "--check", str(stale)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "out of date" in result.stderr


async def test_the_server_serves_the_document(server: ReferenceServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        answer = await http.get("/api/ws/asyncapi.json")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == COMMITTED_DOC


COMMITTED_DOC: dict[str, Any] = json.loads(COMMITTED.read_text(encoding="utf-8"))


async def test_with_an_admin_token_the_document_needs_it(make_server: Any) -> None:
    """Section 9: every route but health requires the admin token once one is configured."""
    server = await make_server(admin_token="asyncapi-token")
    async with httpx.AsyncClient(base_url=server.url) as http:
        refused = await http.get("/api/ws/asyncapi.json")
        allowed = await http.get(
            "/api/ws/asyncapi.json", headers={"Authorization": "Bearer asyncapi-token"}
        )
    assert refused.status_code == 401
    assert allowed.status_code == 200


def test_every_control_event_of_the_socketio_path_is_described() -> None:
    # Issue 21 item 10: the document lacked the `batch` event. (``ack`` is not
    # a Socket.IO event: only the bridge's answer to a frame with an id.)
    names = {message["name"] for message in COMMITTED_DOC["components"]["messages"].values()}
    for control in ControlEvent:
        if control is not ControlEvent.ACK:
            assert control.value in names, control
    batch = COMMITTED_DOC["components"]["messages"]["control.batch"]
    items = COMMITTED_DOC["components"]["schemas"]["Batch"]["properties"]["messages"]["items"]
    assert batch["payload"] == {"$ref": "#/components/schemas/Batch"}
    assert items == {"$ref": "#/components/schemas/Envelope"}
