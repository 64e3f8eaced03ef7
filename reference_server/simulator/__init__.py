"""A simulated intraday operation that feeds the reference server with live events.

Organizations with departments, queues and agents; KPIs that drift, backlogs
that grow and clear, agents checking in and out, alerts that trigger,
escalate, get acknowledged and resolve. The server starts
:meth:`IntradaySimulator.run` in the background with its broadcast as
``publish``; tests call :meth:`IntradaySimulator.step` directly.
"""

from ._feed import IntradaySimulator, Publish
from ._world import SIM_SECONDS_PER_TICK

__all__ = ["SIM_SECONDS_PER_TICK", "IntradaySimulator", "Publish"]
