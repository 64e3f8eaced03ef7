"""examples/live_dashboard.py against a server with the simulated feed."""

from __future__ import annotations

import asyncio
import io
import sys

from rich.console import Console

from client_sdk.testing import running_server
from tests.examples._support import EXAMPLES, ROOT, WAIT, eventually, load_example, subscribed


async def test_dashboard_shows_the_simulated_queues_and_stops_by_itself() -> None:
    example = load_example("live_dashboard.py")
    output = io.StringIO()
    console = Console(file=output, width=140, force_terminal=False, record=True)
    async with running_server(simulate=True, simulate_tick_ms=100) as server:
        state = await example.main(server.url, "acme", 2.0, console=console)
    # The simulated organization's queues arrived and were drawn.
    assert state.kpis, "no KPI reached the dashboard"
    assert any(key.endswith("/support") for key in state.kpis)
    text = console.export_text()
    assert "support" in text
    assert "globex" not in text  # another organization's data never shows


async def test_an_operators_disconnect_ends_it_with_status_3() -> None:
    # Issue 21 item 4: a kicked dashboard showed "disconnected" for ever.
    async with running_server(admin_token="t") as server, server.admin() as admin:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(EXAMPLES / "live_dashboard.py"), "--url", server.url,
            "--org", "acme", "--duration", "60",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
        )  # fmt: skip
        try:
            await eventually(
                lambda: subscribed(admin, "kpi:org:acme"), what="the dashboard subscribed"
            )
            [connection] = (await admin.connections()).connections
            await admin.disconnect(connection.socket_id)
            _, errors = await asyncio.wait_for(process.communicate(), WAIT)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == 3, errors.decode()
    assert "the server ended the connection" in errors.decode()
    assert "Traceback" not in errors.decode()
