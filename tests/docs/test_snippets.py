"""Every Python snippet of the documentation runs here.

The pages include ``docs/snippets/*.py`` whole (or a marked section of
them), so what a reader copies is what ran. Pure snippets (configuration,
models, rooms) are executed as they are. The others talk to a real reference
server started in this event loop: each is loaded with its ``INTRADAY_*``
environment variables pointing at that server and its ``main()`` awaited
here (a blocking ``main()`` runs in a thread), while a feeder publishes KPI
updates and alerts until the snippet has what it waits for. The quickstart
also runs as a separate process, exactly as a reader would start it.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import inspect
import os
import re
import runpy
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from reactivex import operators as ops

from client_sdk import IntradayClient
from client_sdk.admin import AdminClient
from client_sdk.testing import RunningServer, running_server

ROOT = Path(__file__).resolve().parents[2]
SNIPPETS = ROOT / "docs" / "snippets"
DOCS = ROOT / "docs"
ADMIN_TOKEN = "docs-admin-token"
BOUND = 30.0
"""Seconds any one snippet may take before the test fails."""

PURE = ("client_config.py", "delivery_rule.py", "envelope.py")


def _section(path: Path, name: str) -> str:
    """The text between ``# --8<-- [start:name]`` and ``[end:name]`` of a snippet file."""
    match = re.search(
        rf"^# --8<-- \[start:{name}\]\n(.*?)^# --8<-- \[end:{name}\]",
        path.read_text(),
        flags=re.MULTILINE | re.DOTALL,
    )
    assert match is not None, f"no section {name!r} in {path.name}"
    return match.group(1)


@contextlib.contextmanager
def _environment(monkeypatch: pytest.MonkeyPatch, **values: str) -> Iterator[None]:
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    yield


async def _run_main(path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Load a snippet with ``env`` set, then run its ``main()`` within the bound."""
    with _environment(monkeypatch, **env):
        namespace = runpy.run_path(str(path), run_name="snippet")  # not __main__: no asyncio.run
    main: Callable[[], Any] = namespace["main"]
    if inspect.iscoroutinefunction(main):
        await asyncio.wait_for(main(), BOUND)
    else:
        await asyncio.wait_for(asyncio.to_thread(main), BOUND)


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


async def _feed(admin: AdminClient) -> None:
    """Publish a KPI update and an alert for acme's support queue, over and over."""
    scope = {"organization_id": "acme", "department_id": "customer_care", "queue_name": "support"}
    number = 0
    while True:
        number += 1
        await admin.publish_kpi(
            {
                **scope,
                "timestamp": _now(),
                "health_score": 80 + number % 20,
                "utilization": {"current_utilization": 70 + number % 30},
            }
        )
        await admin.publish_alert(
            {
                **scope,
                "timestamp": _now(),
                "alert_id": f"alert-{number}",
                "rule_name": "service_level_below_target",
                "severity": "high",
            }
        )
        await asyncio.sleep(0.05)


@pytest.fixture
async def live() -> AsyncIterator[RunningServer]:
    """A reference server with an admin token, fed with KPI updates and alerts."""
    async with running_server(admin_token=ADMIN_TOKEN) as server, server.admin() as admin:
        feeder = asyncio.create_task(_feed(admin))
        try:
            yield server
        finally:
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feeder


def _env(server: RunningServer, **extra: str) -> dict[str, str]:
    return {"INTRADAY_URL": server.url, "INTRADAY_ADMIN_TOKEN": ADMIN_TOKEN, **extra}


# -- pure snippets ----------------------------------------------------------------------


@pytest.mark.parametrize("name", PURE)
def test_pure_snippet_runs(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(SNIPPETS / name), run_name="__main__")
    assert capsys.readouterr().out.strip(), f"{name} printed nothing"


# -- snippets against a live server ----------------------------------------------------


async def test_quickstart_prints_kpi_updates(
    live: RunningServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await _run_main(SNIPPETS / "quickstart.py", _env(live, INTRADAY_COUNT="3"), monkeypatch)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert all(re.fullmatch(r"\d\d:\d\d:\d\d support: health \d+\.0", line) for line in lines)


async def _feed_three_queues(admin: AdminClient) -> None:
    """A department's three queues updated at once, as a feed does every tick."""
    while True:
        await asyncio.gather(
            *(
                admin.publish_kpi(
                    {
                        "organization_id": "acme",
                        "department_id": "customer_care",
                        "queue_name": queue,
                        "timestamp": _now(),
                        "health_score": 90,
                    }
                )
                for queue in ("support", "billing", "returns")
            )
        )
        await asyncio.sleep(0.05)


async def test_quickstart_prints_every_queue_of_a_department(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_server(admin_token=ADMIN_TOKEN) as server, server.admin() as admin:
        feeder = asyncio.create_task(_feed_three_queues(admin))
        try:
            await _run_main(
                SNIPPETS / "quickstart.py", _env(server, INTRADAY_COUNT="9"), monkeypatch
            )
        finally:
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feeder
    queues = [line.split()[1].rstrip(":") for line in capsys.readouterr().out.splitlines()]
    assert len(queues) == 9
    assert all(queues.count(q) >= 2 for q in ("support", "billing", "returns")), queues


async def test_subscription_loop_prints_messages(
    live: RunningServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await _run_main(SNIPPETS / "subscription_loop.py", _env(live, INTRADAY_COUNT="3"), monkeypatch)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    pattern = r"ALERT (high|critical): alert:\S+|\d\d:\d\d:\d\d (kpi|alert):\S+ \S+"
    assert all(re.fullmatch(pattern, line) for line in lines), lines


async def test_quickstart_runs_as_a_script(live: RunningServer) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-W",
        "error",
        str(SNIPPETS / "quickstart.py"),
        env={**os.environ, **_env(live, INTRADAY_COUNT="2")},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), BOUND)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, err.decode()
    assert len(out.decode().splitlines()) == 2


async def test_notebook_cells_run_with_top_level_await(
    live: RunningServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = SNIPPETS / "notebook.py"
    monkeypatch.setenv("INTRADAY_URL", live.url)
    namespace: dict[str, Any] = {"__name__": "notebook"}

    async def cell(source: str) -> None:
        code = compile(source, str(path), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(code, namespace)  # what IPython does with a cell
        if inspect.iscoroutine(result):
            await asyncio.wait_for(result, BOUND)

    await cell(_section(path, "connect"))
    support = namespace["support"]
    await asyncio.wait_for(support.pipe(ops.first()), BOUND)  # an update came
    await cell(_section(path, "latest"))
    assert support.latest is not None
    assert support.latest.payload.queue_name == "support"
    await cell(_section(path, "close"))
    client: IntradayClient = namespace["client"]
    assert client.state == "disconnected"
    assert re.search(r"^support \d+\.0$", capsys.readouterr().out, flags=re.MULTILINE)


async def test_blocking_script_iterates_messages(
    live: RunningServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await _run_main(SNIPPETS / "blocking_script.py", _env(live, INTRADAY_COUNT="3"), monkeypatch)
    lines = capsys.readouterr().out.splitlines()
    assert lines
    assert all(line.startswith("support: health ") for line in lines)


# -- the hooks guide -------------------------------------------------------------------


async def test_hook_connection_status(
    live: RunningServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await _run_main(SNIPPETS / "hook_connection_status.py", _env(live), monkeypatch)
    out = capsys.readouterr().out.splitlines()
    assert out[:4] == [
        "Status: disconnected",
        "Status: connecting",
        "Status: connected",
        "Status: authenticated",
    ]
    assert out[4].startswith("Dashboard for socket ")
    assert out[5:] == ["Status: disconnected"]


async def test_hook_health(
    live: RunningServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await _run_main(SNIPPETS / "hook_health.py", _env(live, INTRADAY_COUNT="1"), monkeypatch)
    out = capsys.readouterr().out
    assert re.fullmatch(r"\d+\.\d ms, last ping \d\d:\d\d:\d\d\n", out), out


async def test_hook_kpi_updates(
    live: RunningServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await _run_main(SNIPPETS / "hook_kpi_updates.py", _env(live, INTRADAY_COUNT="2"), monkeypatch)
    *updates, utilization, health = capsys.readouterr().out.splitlines()
    # At least two updates: more may come between the second and the widget's unmounting.
    assert len(updates) >= 2
    assert all(line.startswith("New KPI data: support ") for line in updates)
    assert utilization.startswith("Utilization: ")
    assert health.startswith("Health: ")


async def test_hook_alert_notifications(
    live: RunningServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = SNIPPETS / "hook_alert_notifications.py"
    await _run_main(path, _env(live, INTRADAY_COUNT="2"), monkeypatch)
    *toasts, badge, latest = capsys.readouterr().out.splitlines()
    assert len(toasts) >= 2
    assert set(toasts) == {"Alert: service_level_below_target (high)"}
    assert badge == f"Bell badge: {len(toasts)}"  # one count per toast shown
    assert re.fullmatch(r"Latest: alert-\d+ alert:triggered", latest)


async def test_hook_subscription(
    live: RunningServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await _run_main(SNIPPETS / "hook_subscription.py", _env(live, INTRADAY_COUNT="4"), monkeypatch)
    out = capsys.readouterr().out.splitlines()
    assert "isSubscribed: True error: None" in out  # a message may be printed before it
    assert out[-1] == "isSubscribed: False"
    events = [line for line in out if not line.startswith("isSubscribed")]
    assert len(events) >= 4
    assert {line.split()[0] for line in events} <= {"kpi:update", "alert:triggered"}
    assert all(line.endswith(" support") for line in events)


# -- concepts, server operations, troubleshooting --------------------------------------


async def test_error_handling(
    live: RunningServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await _run_main(SNIPPETS / "error_handling.py", _env(live), monkeypatch)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "UNAUTHORIZED False cannot subscribe to another organization's data"
    assert out[1].startswith("failed - gave up after 2 attempts")


async def test_admin_api(
    live: RunningServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await _run_main(SNIPPETS / "admin_api.py", _env(live), monkeypatch)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "server: ok trust 0 connections"
    assert re.fullmatch(r"published [0-9a-f]{32} to 0 sockets", out[1])
    assert out[2].startswith("messages: ")
    assert out[3:] == []  # nobody of acme is connected


async def test_diagnose(
    live: RunningServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await _run_main(SNIPPETS / "diagnose.py", _env(live), monkeypatch)
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"round trip: \d+\.\d ms", out[0])
    assert out[1] == "client state: authenticated reconnects: 0"
    assert out[4] == "server view: authenticated over websocket"
    assert out[5] == "rooms the server does not hold: none"


async def test_jwt_client_hs256(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = secrets.token_hex(32)
    async with running_server(auth_mode="jwt", jwt_secret=secret) as server:
        env = _env(server, INTRADAY_JWT_SECRET=secret)
        await _run_main(SNIPPETS / "jwt_client.py", env, monkeypatch)
    assert capsys.readouterr().out == "authenticated as ops-bot in acme\n"


async def test_jwt_client_rs256(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = tmp_path / "private.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = tmp_path / "public.pem"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    async with running_server(auth_mode="jwt", jwt_public_key_file=public) as server:
        env = _env(server, INTRADAY_JWT_PRIVATE_KEY=str(private))
        await _run_main(SNIPPETS / "jwt_client.py", env, monkeypatch)
    assert capsys.readouterr().out == "authenticated as ops-bot in acme\n"


async def test_contract_run(
    live: RunningServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = _env(live, INTRADAY_CONTRACT_SELECT="s7_")  # section 7: client:ping, one quick check
    with _environment(monkeypatch, **env):
        namespace = runpy.run_path(str(SNIPPETS / "contract_run.py"), run_name="snippet")
    assert await asyncio.wait_for(namespace["main"](), BOUND) == 0
    out = capsys.readouterr().out
    assert re.search(r"^§7 client:ping\s+1\s+0\s+0$", out, flags=re.MULTILINE), out


@pytest.mark.timeout(300)
def test_snippets_type_check_strictly() -> None:
    """What readers copy is typed: ``mypy --strict`` on the snippets (not the notebook cells)."""
    files = [str(p) for p in sorted(SNIPPETS.glob("*.py")) if p.name != "notebook.py"]
    files.append(str(DOCS / "_ext" / "rst_docstrings.py"))
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_snippet_is_tested() -> None:
    """A new snippet must get a test here (by its file name)."""
    source = Path(__file__).read_text()
    untested = [p.name for p in SNIPPETS.glob("*.py") if f'"{p.name}"' not in source]
    assert not untested, f"snippets without a test: {untested}"


def test_python_blocks_in_the_docs_are_included_snippets() -> None:
    """No Python code is written inline in a page: it comes from a tested snippet."""
    fence = re.compile(r"^([ \t]*)```(?:python|py|pycon)\b[^\n]*\n(.*?)^\1```", re.M | re.S)
    inline: list[str] = []
    for page in DOCS.rglob("*.md"):
        for match in fence.finditer(page.read_text()):
            body = [line.strip() for line in match.group(2).splitlines() if line.strip()]
            if not body or not all(line.startswith("--8<--") for line in body):
                inline.append(f"{page.relative_to(DOCS)}: {body[:1]}")
    assert not inline, f"inline Python blocks (put them in docs/snippets/): {inline}"


# Issue 21 item 7: over long-polling python-engineio's client refuses a poll
# answer of more than 16 packets and reconnects (200 broadcasts reached 0-2;
# the server side is the issue "One way out"). troubleshooting.md gives plain
# python-socketio clients the WebSocket-only setting; it holds through a burst.
PLAIN_BURST = 200


@pytest.mark.timeout(90)
async def test_a_plain_websocket_client_gets_a_whole_burst() -> None:
    async with running_server(admin_token="t") as server, server.admin() as admin:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(SNIPPETS / "plain_socketio.py"),
            env={**os.environ, "INTRADAY_URL": server.url, "INTRADAY_COUNT": str(PLAIN_BURST)},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
        )  # fmt: skip
        try:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), BOUND)
            assert line.strip() == b"subscribed", line
            stamp = datetime.now(UTC).isoformat()
            kpi = {"organization_id": "acme", "queue_name": "support", "timestamp": stamp}
            # At once: many messages queue for the socket between two writes.
            await asyncio.gather(
                *(admin.publish_kpi({**kpi, "health_score": n % 100}) for n in range(PLAIN_BURST))
            )
            out, errors = await asyncio.wait_for(process.communicate(), BOUND)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == 0, errors.decode()
    assert out.decode().strip() == f"received {PLAIN_BURST} kpi:update"
