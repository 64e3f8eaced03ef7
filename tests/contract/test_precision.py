"""The suite fails a server only where the protocol's text requires it (issue 14).

Section 4 lets a server ignore a non-room name in ``unsubscribe`` or refuse
it with ``ROOM_NOT_FOUND``: both pass. Section 9 settles the shape of
``GET /connections/{id}``: the flat body of older servers fails. Isolation is
checked even when the run is given one organization (the suite generates a
second one in trust mode), and a run that truly cannot check it says so in
its summary's first line.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from client_sdk.contract import ContractConfig, Outcome, format_summary, run_contract
from client_sdk.contract.checks import all_checks
from client_sdk.contract.model import CheckResult
from client_sdk.contract.runner import ContractReport
from reference_server.app import ReferenceServer
from reference_server.connections import Connection
from reference_server.handlers import Reply
from tests.contract import faults
from tests.contract.conftest import FaultyServerFactory, contract_config
from tests.contract.test_faulty_servers import ISOLATION

NOT_A_ROOM = "unsubscribing from something that is not a room"
ONE_CONNECTION = "GET /connections/{socket_id} shows one socket"


def ignore_non_rooms(server: ReferenceServer) -> None:
    """Make ``server`` take section 4's other reading: a non-room name is ignored."""
    table = server.hub.handlers.table
    real = table["unsubscribe"]

    async def lenient(connection: Connection, data: dict[str, Any]) -> Reply:
        rooms = data.get("rooms")
        if isinstance(rooms, list):
            data = {**data, "rooms": [r for r in rooms if isinstance(r, str) and ":" in r]}
            if not data["rooms"]:
                return Reply(ack={"success": True, "subscriptions": connection.subscriptions})
        return await real(connection, data)

    table["unsubscribe"] = lenient


class FlatConnectionDetail:
    """Answers ``GET /connections/{id}`` flat, as servers did before section 9 settled it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/api/ws/connections/"):
            await self.app(scope, receive, send)
            return
        started: list[Message] = []

        async def flatten(message: Message) -> None:
            if message["type"] == "http.response.start":
                started.append(message)
                return
            body = json.loads(message.get("body", b"{}") or b"{}")
            if isinstance(body.get("connection"), dict):
                body = {"success": True, **body["connection"]}
            raw = json.dumps(body).encode()
            head = dict(started[0])
            head["headers"] = [
                (k, str(len(raw)).encode() if k == b"content-length" else v)
                for k, v in started[0]["headers"]
            ]
            await send(head)
            await send({"type": "http.response.body", "body": raw})

        await self.app(scope, receive, flatten)


async def test_both_readings_of_a_non_room_unsubscribe_pass(
    make_faulty_server: FaultyServerFactory,
) -> None:
    refusing = await make_faulty_server(faults.Fault("none"))
    ignoring = await make_faulty_server(faults.Fault("none"))
    ignore_non_rooms(ignoring)
    for server in (refusing, ignoring):
        report = await run_contract(contract_config(server), select=[NOT_A_ROOM])
        assert [r.outcome for r in report.results] == [Outcome.PASS], format_summary(report)


async def test_the_flat_connection_body_fails_section_9(
    make_faulty_server: FaultyServerFactory,
) -> None:
    server = await make_faulty_server(faults.Fault("none"))
    server.app._api = FlatConnectionDetail(server.app._api)
    report = await run_contract(contract_config(server), select=[ONE_CONNECTION])
    result = report.results[0]
    assert result.outcome is Outcome.FAIL, format_summary(report)
    assert '"connection": {...}' in result.message


async def test_isolation_is_checked_with_one_organization_given(
    make_faulty_server: FaultyServerFactory,
) -> None:
    server = await make_faulty_server(faults.LEAK_ACROSS_ORGANIZATIONS)
    config = contract_config(server, organizations=("org_a",))
    report = await run_contract(config, select=["§4 delivery rule"])
    assert report.result(ISOLATION).outcome is Outcome.FAIL, format_summary(report)
    assert len(report.config.organizations) == 2  # a generated second one


def test_a_run_that_cannot_check_isolation_says_so_first() -> None:
    isolation = next(c for c in all_checks() if c.title == ISOLATION)
    report = ContractReport(
        ContractConfig(url="http://127.0.0.1:1", organizations=("org_a",)),
        (CheckResult(isolation, Outcome.SKIP, "needs 2 organizations"),),
    )
    first = format_summary(report).splitlines()[0]
    assert "ORGANIZATION ISOLATION NOT CHECKED: needs 2 organizations" in first
