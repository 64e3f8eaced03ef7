"""``examples/publisher.py``: run as a script; a subscribed client gets exactly its KPIs."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from client_sdk import IntradayClient, Message, ServerError
from client_sdk.protocol import Payload
from client_sdk.testing import running_server
from tests.examples._support import EXAMPLES, ROOT, WAIT, eventually, load_example

publisher = load_example("publisher.py")

ORG = "acme"
TOKEN = "publisher-test-token"


async def test_a_subscriber_receives_exactly_the_published_kpis() -> None:
    expected = list(publisher.kpis_from_csv(publisher.SAMPLE_CSV, ORG))
    async with (
        running_server(admin_token=TOKEN) as server,
        IntradayClient(url=server.url, user_id="viewer", organization_id=ORG) as client,
    ):
        received: list[Message[Payload]] = []
        client.add_listener("kpi", received.append)
        await client.subscribe(["kpi"])  # every queue of the organization

        env = {**os.environ, "INTRADAY_ADMIN_TOKEN": TOKEN}  # the token from the environment
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(EXAMPLES / "publisher.py"), "--url", server.url, "--org", ORG,
            cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), WAIT)
        assert process.returncode == 0, err.decode()
        assert out.decode().splitlines()[-1] == "published 4 KPIs (4 deliveries)"

        await eventually(lambda: len(received) >= len(expected), what="every KPI received")
        await client.ping()  # a round trip: anything else sent before it has arrived too
        assert [message.event for message in received] == ["kpi:update"] * len(expected)
        assert [message.payload for message in received] == expected
        assert [message.target.queue_name for message in received] == [
            "support",
            "billing",
            "support",
            "billing",
        ]

        # Run again on the same rows (a job started twice): each row has its
        # Idempotency-Key, so the server answers with what it sent and sends nothing.
        options = publisher.parse_args(["--url", server.url, "--token", TOKEN, "--org", ORG])
        await publisher.publish(options, expected)
        await client.ping()
        assert len(received) == len(expected)
        async with server.admin() as admin:
            assert (await admin.stats()).total_messages == len(expected)


async def test_a_wrong_token_publishes_nothing() -> None:
    kpis = list(publisher.kpis_from_csv(publisher.SAMPLE_CSV, ORG))
    async with running_server(admin_token=TOKEN) as server:
        options = publisher.parse_args(["--url", server.url, "--token", "wrong"])
        with pytest.raises(ServerError) as refused:
            await publisher.publish(options, kpis)
        assert refused.value.http_status == 401
        async with server.admin() as admin:
            assert (await admin.stats()).total_messages == 0


def test_a_bad_row_is_rejected_before_anything_is_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "kpis.csv"
    bad.write_text(publisher.SAMPLE_CSV + "2026-11-25T11:00:00Z,,support,140,90,80\n")
    # An unreachable URL: had it tried to publish, it would exit 1, not 2.
    assert publisher.main(["--url", "http://127.0.0.1:1", "--csv", str(bad)]) == 2
    assert "line 6: not a valid KPI row" in capsys.readouterr().err
