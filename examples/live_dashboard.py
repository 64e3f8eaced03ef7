"""The live terminal dashboard: the Python twin of the console's LiveDashboard.

Connection status and round trip, KPIs per queue, backlog, and the latest
alerts with their count, redrawn as events arrive. It is built on the SDK's
hooks (see ``client_sdk.dashboard``); this file only wires a client to it.

    python examples/live_dashboard.py --url http://localhost:5000 --org acme --duration 30

Options fall back to the environment: INTRADAY_URL, INTRADAY_ORG, DURATION.
It comes back by itself after an outage, but not after the server ended the
connection on purpose (an operator's disconnect): it then exits with status 3
and one line saying so.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from rich.console import Console

from client_sdk import ClientConfig, IntradayClient, IntradayError
from client_sdk.dashboard import ENDED_BY_SERVER, DashboardState, run_dashboard


async def main(
    url: str, organization_id: str, duration: float | None, console: Console | None = None
) -> DashboardState:
    """Show the dashboard of ``organization_id`` for ``duration`` seconds (or until Ctrl-C)."""
    config = ClientConfig(
        url=url,
        user_id="dashboard",
        organization_id=organization_id,
        reconnection_attempts=None,  # a wall screen should come back on its own
    )
    async with IntradayClient(config) as client:
        return await run_dashboard(
            client, organization_id=organization_id, duration=duration, console=console
        )


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=os.environ.get("INTRADAY_URL", "http://localhost:5000"))
    parser.add_argument("--org", default=os.environ.get("INTRADAY_ORG", "acme"))
    duration = os.environ.get("DURATION")
    parser.add_argument("--duration", type=float, default=float(duration) if duration else None)
    return parser.parse_args()


def _exit_status(args: argparse.Namespace) -> int:
    """Run until Ctrl-C (0); 3 when the server ended the connection, 1 for another failure."""
    try:
        asyncio.run(main(args.url, args.org, args.duration))
    except KeyboardInterrupt:  # Ctrl-C is how a wall screen stops
        return 0
    except IntradayError as exc:
        print(f"live_dashboard: {exc}", file=sys.stderr)
        return 3 if str(exc) == ENDED_BY_SERVER else 1
    return 0


if __name__ == "__main__":
    sys.exit(_exit_status(_arguments()))
