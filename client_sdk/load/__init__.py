"""Load testing: ``intraday-live load`` and the same run from code.

:func:`run_load` starts ``LoadConfig.processes`` worker processes holding
``clients`` real :class:`~client_sdk.IntradayClient` connections between
them, publishes numbered, timestamped ``kpi:update`` messages through the
management API at ``rate`` per second for ``duration`` seconds, and returns
what arrived: loss, duplicates and order per client, end-to-end latency,
reconnects, and the server's CPU and RSS when it runs on this host.
:func:`~client_sdk.load.report.write_report` writes them as JSON or HTML.
"""

from __future__ import annotations

from ._run import LoadConfig, Progress, run_load
from .report import render_table, write_report

__all__ = ["LoadConfig", "Progress", "render_table", "run_load", "write_report"]
