"""``examples/notebook/live_kpis.ipynb``: executed headless by nbclient against a simulated feed."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from tests.examples._support import EXAMPLES, eventually, subscribed

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("pandas")
pytest.importorskip("matplotlib")

from client_sdk.testing import running_server  # noqa: E402

NOTEBOOK = EXAMPLES / "notebook" / "live_kpis.ipynb"
ORG = "acme"


def outputs(notebook: Any) -> list[dict[str, Any]]:
    return [
        output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    ]


def printed(notebook: Any) -> str:
    return "".join(o["text"] for o in outputs(notebook) if o["output_type"] == "stream")


@pytest.mark.timeout(90)  # a kernel start and pandas + matplotlib imports on a shared machine
async def test_the_notebook_shows_live_kpis_and_counts_alerts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_server(simulate=True, simulate_tick_ms=100) as server:
        # The kernel inherits this environment; the notebook's first cell reads it.
        monkeypatch.setenv("INTRADAY_URL", server.url)
        monkeypatch.setenv("INTRADAY_ORG", ORG)
        monkeypatch.setenv("INTRADAY_QUEUE", "support")
        monkeypatch.setenv("DURATION", "4")
        monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")  # no migration warning from jupyter
        notebook = nbformat.read(NOTEBOOK, as_version=4)
        runner = nbclient.NotebookClient(
            notebook,
            timeout=60,
            kernel_name="python3",
            resources={"metadata": {"path": str(tmp_path)}},
        )
        execution = asyncio.create_task(runner.async_execute())
        # One alert of our own, published once the notebook observes the alerts,
        # so the count cannot be zero whatever the simulator does.
        async with server.admin() as admin:
            await eventually(
                lambda: subscribed(admin, f"alerts:org:{ORG}"),
                timeout=60,
                what="the notebook subscribed to alerts",
                unless_done=execution,
            )
            await admin.publish_alert(
                {
                    "organization_id": ORG,
                    "queue_name": "support",
                    "timestamp": "2026-11-25T10:30:00Z",
                    "alert_id": "from-the-test",
                    "rule_name": "notebook_test",
                    "severity": "critical",
                }
            )
        await asyncio.wait_for(execution, 60)

    text = printed(notebook)
    rows = re.search(r"^KPI rows: (\d+)$", text, re.MULTILINE)
    alerts = re.search(r"^alerts: (\d+)$", text, re.MULTILINE)
    assert rows is not None, text
    assert alerts is not None, text
    assert int(rows.group(1)) > 0
    assert int(alerts.group(1)) >= 1
    assert "subscribed to support's KPIs and acme's alerts" in text
    assert text.rstrip().endswith("disconnected")

    data = [
        o["data"]
        for o in outputs(notebook)
        if o["output_type"] in ("display_data", "execute_result")
    ]
    assert any("image/png" in d for d in data), "no chart"
    assert any("text/html" in d and "utilization" in d["text/html"] for d in data), "no table"
    assert not [o for o in outputs(notebook) if o["output_type"] == "error"]


def live_cell(notebook: Any) -> Any:
    [cell] = [c for c in notebook.cells if c.cell_type == "code" and "live_table(" in c.source]
    return cell


@pytest.mark.timeout(90)
async def test_the_live_views_return_at_once_and_update_in_place_afterwards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_server(simulate=True, simulate_tick_ms=100) as server:
        monkeypatch.setenv("INTRADAY_URL", server.url)
        monkeypatch.setenv("INTRADAY_ORG", ORG)
        monkeypatch.setenv("INTRADAY_QUEUE", "support")
        monkeypatch.setenv("DURATION", "3")
        monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
        notebook = nbformat.read(NOTEBOOK, as_version=4)
        runner = nbclient.NotebookClient(
            notebook, timeout=60, kernel_name="python3",
            resources={"metadata": {"path": str(tmp_path)}},
        )  # fmt: skip
        await asyncio.wait_for(runner.async_execute(), 80)

    text = printed(notebook)
    returned = re.search(
        r"^the live cell returned after \d+\.\d+ s, (\d+) redraws so far$", text, re.MULTILINE
    )
    redraws = re.search(r"^live table redraws: (\d+), live chart redraws: (\d+)$", text, re.M)
    assert returned is not None, text
    # Returned before any redraw (they run on the loop once the cell is done), ...
    assert int(returned.group(1)) == 0
    assert redraws is not None, text
    assert int(redraws.group(1)) >= 1  # ... and redrawn while the next cell ran
    assert int(redraws.group(2)) >= 1
    assert re.search(r"^rows now: .*support", text, re.MULTILINE), text
    # nbclient keeps only the messages of the cell it runs, and the views' updates
    # belong to the live cell (a frontend applies them by display id): the in-place
    # update itself is checked in tests/sdk/test_notebook_views.py.
    shown = [o for o in live_cell(notebook).outputs if o["output_type"] == "display_data"]
    assert len(shown) == 2
    assert "text/html" in shown[0]["data"]
    assert "image/png" in shown[1]["data"]
