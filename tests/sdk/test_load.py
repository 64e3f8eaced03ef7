"""``intraday-live load`` against the real reference server, with small numbers."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from client_sdk.cli import main as cli_main
from client_sdk.load import LoadConfig, run_load, write_report

from ..conftest import ServerFactory

TOKEN = "load-token"


@pytest.mark.timeout(120)
async def test_a_small_run_delivers_everything_and_reports_it(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    server = await make_server(admin_token=TOKEN)
    config = LoadConfig(
        url=server.url,
        clients=6,
        orgs=2,
        rate=20,
        duration=2,
        processes=2,
        admin_token=TOKEN,
        size=200,
    )
    figures = await run_load(config)
    assert figures["connect"] == figures["connect"] | {"connected": 6, "failed": 0}
    assert figures["published"] == 40
    assert figures["delivered"] == 40 * 3  # each message reaches its organization's 3 clients
    assert figures["lost"] == 0
    assert figures["duplicated"] == 0
    assert figures["out_of_order"] == 0
    assert figures["reconnects"] == 0
    latency = figures["latency_ms"]
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
    assert figures["server"]["samples"], "the server runs on this host: CPU and RSS are measured"

    write_report(figures, tmp_path / "run.json")
    saved = json.loads((tmp_path / "run.json").read_text())
    assert {"delivered", "lost", "duplicated", "out_of_order", "reconnects"} <= saved.keys()
    assert set(saved["latency_ms"]) == {"p50", "p90", "p99", "max"}
    assert TOKEN not in json.dumps(saved)
    write_report(figures, tmp_path / "run.html")
    page = (tmp_path / "run.html").read_text()
    assert "<svg" in page
    assert "http" not in page.replace("http://127.0.0.1", "")  # loads nothing from anywhere
    # Every plot has values on both axes and says what they are (issue 21 item 11).
    plots = page.count("<svg")
    assert plots >= 4  # deliveries, mean and max latency, server RSS
    assert page.count('class="y-tick"') == page.count('class="x-tick"') == 3 * plots
    assert page.count("seconds since the start") == plots
    assert ">MiB</text>" in page
    assert ">ms</text>" in page


@pytest.mark.timeout(120)
async def test_the_command_prints_the_table_writes_the_report_and_exits_0(
    make_server: ServerFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = await make_server(admin_token=TOKEN)
    report = tmp_path / "run.html"
    argv = ["load", "--url", server.url, "--admin-token", TOKEN, "--clients", "2"]
    argv += ["--rate", "10", "--duration", "1", "--report", str(report), "--quiet"]
    # The command runs its own event loop: in a thread, beside this test's.
    status = await asyncio.to_thread(cli_main, argv)
    assert status == 0
    table = capsys.readouterr().out
    assert "lost (worst client)" in table
    assert re.search(r"delivered / expected +20 / 20", table), table
    assert report.read_text().startswith("<!doctype html>")


def test_a_report_must_be_json_or_html(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["load", "--url", "http://127.0.0.1:1", "--report", "run.txt"])
    assert exit_info.value.code == 2
    assert ".json or .html" in capsys.readouterr().err


def test_a_target_beyond_this_machine_is_refused_without_the_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["load", "--url", "http://192.0.2.10:5000", "--duration", "1"])
    assert exit_info.value.code == 2
    assert "--i-own-this-server" in capsys.readouterr().err


@pytest.mark.parametrize(
    "url",
    [
        "http://127.rt-probe.invalid:5000",  # looks like 127/8, resolves nowhere
        "http://localhost.rt-probe.invalid:5000",
        "http://[::ffff:192.0.2.10]:5000",
    ],
)
def test_a_name_that_only_looks_like_loopback_is_refused_without_the_flag(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["load", "--url", url, "--duration", "1"])
    assert exit_info.value.code == 2
    assert "--i-own-this-server" in capsys.readouterr().err


@pytest.mark.parametrize(
    "url", ["http://localhost:5000", "http://127.0.0.2:5000", "http://[::1]:5000"]
)
def test_names_and_addresses_of_this_machine_count_as_loopback(url: str) -> None:
    from client_sdk.load._server_probe import is_loopback_url

    assert is_loopback_url(url)
