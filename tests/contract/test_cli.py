"""``client_sdk.contract.cli.main``: exit statuses, the summary, the JUnit file."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from client_sdk.contract.cli import main
from reference_server.app import ReferenceServer
from tests.contract import faults
from tests.contract.conftest import ADMIN_TOKEN, FaultyServerFactory


def base_args(server: ReferenceServer) -> list[str]:
    return [
        "--url",
        server.url,
        "--admin-token",
        ADMIN_TOKEN,
        "--org",
        "org_a",
        "--org",
        "org_b",
        "--destructive",
        "--timeout",
        "3",
        "--auth-timeout-wait",
        "2",
    ]


async def test_passing_run_exits_0_and_writes_junit(
    small_server: ReferenceServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junit = tmp_path / "contract.xml"
    argv = [*base_args(small_server), "--junit", str(junit), "-k", "§4", "-k", "capabilities"]
    status = await asyncio.to_thread(main, argv)
    out = capsys.readouterr().out
    assert status == 0, out
    assert "§4 delivery rule" in out
    assert "PASSED" in out
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites"
    assert root.get("failures") == "0"
    assert root.get("skipped") == "0"  # batch, replay and snapshot are advertised
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {"§4 subscriptions", "§4 delivery rule", "§5-6 capabilities"}
    cases = root.findall(".//testcase")
    # 18 of section 4, batch and 7 of section 6 (replay and snapshot).
    assert len(cases) == int(root.get("tests", "0")) == 26
    assert all(c.get("name", "").startswith("§") for c in cases)
    assert not root.findall(".//skipped")


async def test_failing_run_exits_1_and_reports_the_failure(
    make_faulty_server: FaultyServerFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = await make_faulty_server(faults.DELIVER_ONCE_PER_ROOM)
    junit = tmp_path / "contract.xml"
    argv = [*base_args(server), "--junit", str(junit), "-k", "one delivery per socket"]
    status = await asyncio.to_thread(main, argv)
    out = capsys.readouterr().out
    assert status == 1, out
    assert "FAIL §4 delivery rule: one delivery per socket" in out
    assert "received: 4 copies" in out
    failures = ET.parse(junit).getroot().findall(".//failure")
    assert len(failures) == 1
    assert "4 copies" in (failures[0].text or "")


async def test_unreachable_server_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    status = await asyncio.to_thread(main, ["--url", "http://127.0.0.1:9", "--timeout", "1"])
    assert status == 2
    assert "server unreachable" in capsys.readouterr().out


def test_bad_options_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--url", "http://127.0.0.1:9", "--org", "a:b"]) == 2
    assert "organizations" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2


def test_list_names_every_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--url", "http://127.0.0.1:9", "--list", "-k", "§7"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("s7_client_ping_")
    assert "§7 client:ping: " in lines[0]


async def test_unreachable_server_stops_after_the_reachability_check(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    junit = tmp_path / "junit.xml"
    argv = ["--url", "http://127.0.0.1:9", "--timeout", "1", "--junit", str(junit)]
    assert await asyncio.to_thread(main, argv) == 2
    out = capsys.readouterr().out
    assert "stopped after the reachability check" in out
    assert "FAIL" not in out
    assert "connection refused" in out
    errors = ET.parse(junit).getroot().findall(".//error")
    assert len(errors) == 1


async def test_a_wrong_path_is_reported_as_the_servers_answer(
    server: ReferenceServer, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--url", server.url, "--path", "/nope", "--timeout", "2"]
    assert await asyncio.to_thread(main, argv) == 2
    out = capsys.readouterr().out
    assert "HTTP 40" in out
    assert "check the path" in out
