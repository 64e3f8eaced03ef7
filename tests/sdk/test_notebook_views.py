"""``client_sdk.notebook``: a live view displays at once, then its output updates in place.

IPython's own display machinery (an in-process shell and its capturing
publisher) against the real server: what a notebook frontend receives.
"""

from __future__ import annotations

from typing import Any

import pytest

from client_sdk import IntradayClient
from client_sdk.admin import AdminClient
from client_sdk.hooks import kpi_updates
from client_sdk.testing import running_server
from tests.conftest import kpi

pytest.importorskip("IPython")
pytest.importorskip("pandas")
pytest.importorskip("matplotlib")

from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from client_sdk.notebook import live_chart, live_table

WAIT = 10.0


async def test_a_live_table_and_chart_return_at_once_and_update_in_place() -> None:
    import matplotlib

    matplotlib.use("Agg")
    InteractiveShell.instance()  # the display publisher a kernel would have
    from IPython.display import display

    async with running_server() as server, server.admin() as admin:
        client = IntradayClient(
            url=server.url, path=server.path, user_id="nb", organization_id="org_a"
        )
        await client.connect()
        hook = kpi_updates(client)
        table = live_table(hook, lambda m: {"health": m.payload.health_score}, interval=0.01)
        chart = live_chart(hook, lambda m: m.payload.health_score, y_label="health", interval=0.01)
        with capture_output() as captured:
            display(table)  # synchronous: it cannot wait for the network
            display(chart)
            await hook.wait_subscribed(timeout=WAIT)
            await _publish(admin)
            await table.wait_redrawn(timeout=WAIT)
            await chart.wait_redrawn(timeout=WAIT)
        table.stop()
        chart.stop()
        await client.close()
    first, *updates = captured.outputs
    assert "waiting for the first message" in first.data["text/html"]
    table_updates = [o for o in updates if "text/html" in o.data]
    assert table_updates, "the table was never redrawn"
    assert all(o.update for o in table_updates)  # in place: update_display_data
    assert "support" in table_updates[-1].data["text/html"]
    assert any("image/png" in o.data and o.update for o in updates)
    # Both axes say what they are (issue 21 item 11).
    [axes] = chart.figure().axes
    assert axes.get_xlabel() == "time (UTC)"
    assert axes.get_ylabel() == "health"
    assert [line.get_label() for line in axes.get_lines()] == ["support"]


async def _publish(admin: AdminClient) -> None:
    body: dict[str, Any] = kpi("org_a", "support", health_score=77)
    await admin.publish_kpi(body)
