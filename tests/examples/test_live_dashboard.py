"""examples/live_dashboard.py against a server with the simulated feed."""

from __future__ import annotations

import io

from rich.console import Console

from client_sdk.testing import running_server
from tests.examples._support import load_example


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
