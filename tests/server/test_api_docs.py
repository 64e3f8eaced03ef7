"""The OpenAPI description and the docs page: behind the admin token, local, and true (issue 14).

The last test runs Schemathesis against the live server for a bounded time:
every response must conform to the description (status codes, content
types, bodies, headers). Two of its checks are left out, for a stated
reason each: ``positive_data_acceptance`` (its one finding left is a number
like ``116.0`` for an integer field: JSON Schema counts it an integer, the
payload models' strict integers do not; the broadcasts' bodies are checked
against the description event by event in
``test_the_broadcast_bodies_are_described_as_strictly_as_the_server_checks``)
and ``negative_data_rejection`` (the payload models validate in pydantic's
lax mode, so a timestamp may also be given as epoch seconds).
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from client_sdk.contract._samples import sample_payload
from client_sdk.protocol import EVENT_CHANNEL, EVENT_PAYLOADS, BroadcastKind, ServerEvent
from reference_server.api_docs import OPERATION_IDS
from reference_server.app import ReferenceServer
from tests.conftest import ServerFactory

TOKEN = "docs-admin-token"
BASE = "/api/ws"
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


def authorized(server: ReferenceServer) -> httpx.AsyncClient:
    """An HTTP client of ``server`` that sends the admin token."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    return httpx.AsyncClient(base_url=server.url, timeout=5, headers=headers)


async def test_the_description_follows_the_admin_token_and_the_page_holds_none(
    make_server: ServerFactory,
) -> None:
    server = await make_server(admin_token=TOKEN)
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        refused = await http.get(BASE + "/openapi.json")
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "AUTH_FAILED"
        allowed = await http.get(
            BASE + "/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert allowed.status_code == 200
        # The page is public, as a browser cannot add the header: it asks for the
        # token and fetches the description with it (issue 21 item 10).
        page = await http.get(BASE + "/docs")
        assert page.status_code == 200
        assert "/api/ws/connections" not in page.text
        assert 'data-token-required="true"' in page.text
        assert not re.search(r"<input[^>]*name=", page.text)  # the token never in a URL


async def test_docs_page_needs_nothing_from_outside(make_server: ServerFactory) -> None:
    server = await make_server()
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        page = (await http.get(f"{BASE}/docs")).text
        assert "https://" not in page
        assert "cdn" not in page.lower()
        own = await http.get(f"{BASE}/docs/assets/docs-page.js")
        assert own.status_code == 200
        assert "https://" not in own.text
        script = await http.get(f"{BASE}/docs/assets/swagger-ui-bundle.js")
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")
        css = await http.get(f"{BASE}/docs/assets/swagger-ui.css")
        assert css.status_code == 200
        assert (await http.get(f"{BASE}/docs/assets/../../app.py")).status_code == 404


async def test_description_documents_errors_security_and_payloads(
    make_server: ServerFactory,
) -> None:
    server = await make_server(admin_token=TOKEN)
    async with authorized(server) as http:
        document = (await http.get(f"{BASE}/openapi.json")).json()
    assert document["components"]["securitySchemes"]["adminToken"]["scheme"] == "bearer"
    paths = document["paths"]
    detail = paths[f"{BASE}/connections/{{socket_id}}"]["get"]
    assert {"200", "400", "401", "404"} <= set(detail["responses"])
    assert "422" not in detail["responses"]
    assert detail["security"] == [{"adminToken": []}]
    broadcast = paths[f"{BASE}/broadcast/kpi"]["post"]
    assert "413" in broadcast["responses"]
    body = broadcast["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/KpiPayload"}
    assert "KpiPayload" in document["components"]["schemas"]
    assert "security" not in paths[f"{BASE}/health"]["get"]
    # The section 9 shape is what the description promises.
    shape = document["components"]["schemas"]["ConnectionDetail"]["properties"]
    assert "connection" in shape


@pytest.mark.skipif(not SCHEMATHESIS.exists(), reason="schemathesis is in the dev extra")
async def test_schemathesis_finds_no_conformance_failure(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    server = await make_server(admin_token=TOKEN, log_connection_events=False)
    budget = os.environ.get("SCHEMATHESIS_SECONDS", "20")
    process = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS),
        "run",
        f"{server.url}{BASE}/openapi.json",
        "--header",
        f"Authorization: Bearer {TOKEN}",
        "--exclude-checks",
        "positive_data_acceptance,negative_data_rejection",
        "--max-examples",
        "10",
        "--max-time",
        budget,
        "--generation-deterministic",
        "--no-color",
        cwd=tmp_path,  # its cache directory stays out of the work tree
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), float(budget) + 60)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-6000:]


def _validator(document: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    """A validator of ``schema``, its ``#/components/...`` references resolved in ``document``."""
    return jsonschema.Draft202012Validator({**schema, "components": document["components"]})


async def test_the_broadcast_bodies_are_described_as_strictly_as_the_server_checks(
    make_server: ServerFactory,
) -> None:
    # Issue 21 item 10: the description let a broadcast's data be any event's
    # payload and ?event= name another channel's event; Schemathesis sent two
    # such schema-valid requests and the server rejected them.
    server = await make_server(admin_token=TOKEN)
    async with authorized(server) as http:
        document = (await http.get(f"{BASE}/openapi.json")).json()
        paths = document["paths"]
        assert f"{BASE}/broadcast/{{kind}}" not in paths
        body = paths[f"{BASE}/broadcast"]["post"]["requestBody"]["content"]["application/json"]
        described = _validator(document, body["schema"])
        # One event per payload model stands for every event of that model.
        representatives = {EVENT_PAYLOADS[event]: event for event in ServerEvent}.values()
        for event in ServerEvent:
            for payload_of in representatives:
                data = sample_payload(payload_of, "docs", "org_docs")
                request = {"event": event.value, "data": data}
                valid = described.is_valid(request)
                status = (await http.post(f"{BASE}/broadcast", json=request)).status_code
                assert status == (200 if valid else 400), (event, payload_of, status)
            assert described.is_valid(
                {"event": event.value, "data": sample_payload(event, "docs", "org_docs")}
            ), event
        for kind in BroadcastKind:
            operation = paths[f"{BASE}/broadcast/{kind.value}"]["post"]
            [event_parameter] = [p for p in operation["parameters"] if p["name"] == "event"]
            events = [ServerEvent(name) for name in event_parameter["schema"]["enum"]]
            assert kind.default_event in events
            assert {EVENT_CHANNEL[event] for event in events} == {kind.channel}
            schema = operation["requestBody"]["content"]["application/json"]["schema"]
            for event in events:
                data = sample_payload(event, "docs", "org_docs")
                assert _validator(document, schema).is_valid(data), (kind, event)
                response = await http.post(
                    f"{BASE}/broadcast/{kind.value}", params={"event": event.value}, json=data
                )
                assert response.status_code == 200, (kind, event, response.text)


async def test_every_operation_has_a_chosen_id(make_server: ServerFactory) -> None:
    server = await make_server()
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        document = (await http.get(f"{BASE}/openapi.json")).json()
    ids = [
        (method, path, operation["operationId"])
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    ]
    assert {(method, path): op for method, path, op in ids} == OPERATION_IDS
    assert len({op for _, _, op in ids}) == len(ids)
