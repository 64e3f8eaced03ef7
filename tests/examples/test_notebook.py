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
