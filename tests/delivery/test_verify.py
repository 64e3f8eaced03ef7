"""``intraday-live verify`` against servers that misdeliver on purpose, and its command line.

Each faulty server (the fan-out seam of :mod:`tests.contract.faults`) gets
one numbered message wrong; the raw socket.io subscribers, which drop and
reorder nothing themselves, must show it in the matching column and nowhere
else. A clean server, with connections dropped meanwhile, shows nothing.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from client_sdk.verify import VerifyConfig, run_verify
from client_sdk.verify.report import render_table, write_junit
from reference_server.app import ReferenceServer
from tests.contract.faults import one_off_fanout

ServerFactory = Callable[..., Awaitable[ReferenceServer]]

QUICK: dict[str, Any] = {"rate": 40.0, "duration": 0.5, "settle": 1.0, "fault": "none"}
"""20 messages over two streams, no network fault: the server's own faults show alone."""

COLUMNS = ("lost", "duplicated", "out_of_order", "phantom")


@pytest.mark.parametrize(
    ("fault", "column"),
    [
        ("drop", "lost"),
        ("duplicate", "duplicated"),
        ("reorder", "out_of_order"),
        ("invent", "phantom"),
    ],
)
async def test_verify_reports_each_fault_of_a_faulty_server(
    make_server: ServerFactory, fault: str, column: str
) -> None:
    server = await make_server(wrap_fanout=one_off_fanout(fault))
    result = await run_verify(VerifyConfig(url=server.url, sdk_clients=1, raw_clients=2, **QUICK))
    raw = [row for row in result.rows if row.kind == "raw"]
    figures = {name: sum(getattr(row, name) for row in raw) for name in COLUMNS}
    # Each raw subscriber sees the fault once (reordering two messages puts one out of order).
    assert figures == {name: 2 if name == column else 0 for name in COLUMNS}, render_table(result)
    assert not result.clean


async def test_verify_of_a_clean_server_under_drops_is_clean(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    server = await make_server()
    config = VerifyConfig(
        url=server.url, sdk_clients=1, raw_clients=1, rate=40.0, duration=2.5,
        fault="drop", fault_every=0.8, fault_seconds=0.4, settle=3.0,
    )  # fmt: skip
    result = await run_verify(config)
    assert result.faults_applied >= 2
    assert result.clean, render_table(result)
    assert result.total.delivered_percent == 100.0, render_table(result)
    junit = tmp_path / "verify.xml"
    write_junit(result, junit)
    suite = ET.parse(junit).getroot()
    assert suite.get("failures") == "0"
    assert suite.get("tests") == str(len(result.rows))


async def test_verify_of_a_server_without_replay_reports_every_loss_as_a_gap(
    make_server: ServerFactory,
) -> None:
    server = await make_server(store="none")
    config = VerifyConfig(
        url=server.url, sdk_clients=1, raw_clients=1, rate=40.0, duration=2.5,
        fault="drop", fault_every=0.8, fault_seconds=0.4, settle=1.5,
    )  # fmt: skip
    result = await run_verify(config)
    total = result.total
    assert total.lost_reported > 0, render_table(result)
    assert total.lost == 0, render_table(result)
    assert result.clean


async def test_verify_waits_for_subscribers_still_reconnecting_when_the_run_ends(
    make_server: ServerFactory,
) -> None:
    # The last drop outlasts the publishing: every client is away when the run
    # ends, and a server without replay can only tell them of the loss once they
    # are back. Tallied before that, their losses would count as silent.
    server = await make_server(store="none")
    config = VerifyConfig(
        url=server.url, sdk_clients=1, raw_clients=1, rate=40.0, duration=1.0,
        fault="drop", fault_every=0.5, fault_seconds=2.0, settle=0.3,
    )  # fmt: skip
    result = await run_verify(config)
    for row in result.rows:
        told = (row.lost, row.lost_reported > 0, row.gaps_reported > 0)
        assert told == (0, True, True), render_table(result)
    assert result.clean
    assert not result.notes


async def test_restarts_are_spread_over_the_run_however_long_each_takes(
    make_server: ServerFactory,
) -> None:
    # A "restart" of 0.5 s that restarts nothing: due at 1, 2 and 3 s of a 4 s run,
    # all three fit (waiting a third of the run after each ended fitted two).
    server = await make_server()
    config = VerifyConfig(
        url=server.url, sdk_clients=1, raw_clients=1, rate=10.0, duration=4.0,
        fault="restart", restarts=3, restart_command="sleep 0.5", settle=1.0,
    )  # fmt: skip
    result = await run_verify(config)
    assert result.faults_applied == 3, result.notes
    assert result.notes == []
    assert result.clean, render_table(result)


def test_cli_refuses_a_remote_server() -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "client_sdk.cli", "verify", "--url", "http://192.0.2.1:5000"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "--i-own-this-server" in refused.stderr


async def test_cli_runs_and_writes_json(make_server: ServerFactory, tmp_path: Path) -> None:
    server = await make_server()
    out = tmp_path / "run.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "client_sdk.cli", "verify", "--url", server.url,
        "--duration", "0.5", "--rate", "20", "--fault", "none", "--settle", "1",
        "--sdk-clients", "1", "--raw-clients", "1", "--quiet", "--json", str(out),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    assert "% delivered under no fault" in stdout.decode()
    figures = json.loads(out.read_text())
    assert figures["delivered_percent"] == 100.0
    assert figures["total"]["published"] == 10


def test_the_checkers_subscribers_leave_the_programs_ctrl_c_alone() -> None:
    """A program that runs the delivery checker keeps its own SIGINT handler.

    python-engineio replaces the process's handler on its first client unless told
    not to, and keeps the replacement: in a fresh process, as a program starts.
    """
    code = (
        "import signal\n"
        "from client_sdk.protocol import Channel\n"
        "from client_sdk.verify.ledger import SubscriberLog\n"
        "from client_sdk.verify.subscribers import RawSubscriber\n"
        "auth = {'user_id': 'user_1', 'organization_id': 'org_a'}\n"
        "log = SubscriberLog('raw-1', 'raw')\n"
        "RawSubscriber(log, 'http://127.0.0.1:1', '/socket.io', auth, [Channel.KPI], 'run')\n"
        "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert ran.stdout.strip() == "True", ran.stdout + ran.stderr
