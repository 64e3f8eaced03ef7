"""``intraday-live verify``: how many messages a server's clients lose when the network drops.

::

    intraday-live verify --url http://127.0.0.1:5000 --admin-token "$ADMIN_TOKEN" \\
        --fault drop --duration 60 --json run.json --junit run.xml

It refuses a server that is not on this machine unless ``--i-own-this-server``
is given (as ``load`` does): the run publishes hundreds of messages and
opens connections it cuts on purpose. Exit status: 0 when nothing was lost
without a gap, duplicated, reordered or invented; 1 when something was; 2
for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from .._argtypes import positive as _positive
from ..load._server_probe import is_loopback_url
from .report import render_table, write_json, write_junit
from .run import FAULTS, VerifyConfig, run_verify

__all__ = ["main"]

PROG = "intraday-live verify"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description="Measure what a live-updates server delivers under faults."
    )
    p.add_argument("--url", required=True, help="server URL, http(s)://host:port")
    p.add_argument("--path", default="/ws", help="Socket.IO path (default /ws)")
    p.add_argument("--admin-token", help="bearer token of the management API")
    p.add_argument("--token", help="a JWT for the subscribers (jwt mode; names their org)")
    p.add_argument("--org", help="the run's organization (default verify-<run id>)")
    p.add_argument("--sdk-clients", type=int, default=2, help="SDK subscribers (default 2)")
    p.add_argument("--raw-clients", type=int, default=2, help="raw socket.io subscribers (2)")
    p.add_argument("--rate", type=_positive(float), default=20.0, help="messages/s (default 20)")
    p.add_argument("--duration", type=_positive(float), default=30.0, help="seconds publishing")
    p.add_argument("--fault", choices=FAULTS, default="drop", help="what to do to the clients")
    p.add_argument("--fault-every", type=_positive(float), default=5.0, help="seconds (5)")
    p.add_argument("--fault-seconds", type=_positive(float), default=2.0, help="length (2)")
    p.add_argument("--delay", type=_positive(float), default=0.5, help="--fault delay: seconds")
    p.add_argument("--restart-command", help="shell command that restarts the server")
    p.add_argument("--restarts", type=_positive(int), default=5, help="--fault restart: count")
    p.add_argument("--settle", type=_positive(float), default=10.0, help="quiet seconds to end")
    p.add_argument("--json", type=Path, help="write the figures to this JSON file")
    p.add_argument("--junit", type=Path, help="write a JUnit XML report to this file")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument(
        "--i-own-this-server",
        action="store_true",
        help="allow a target that is not on this machine",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``intraday-live verify``; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not is_loopback_url(args.url) and not args.i_own_this_server:
        parser.error(f"{args.url} is not on this machine: add --i-own-this-server if it is yours")
    if args.fault == "restart" and not args.restart_command:
        parser.error("--fault restart needs --restart-command")
    if args.sdk_clients < 0 or args.raw_clients < 0 or args.sdk_clients + args.raw_clients == 0:
        parser.error("at least one subscriber (--sdk-clients, --raw-clients)")
    config = VerifyConfig(
        url=args.url,
        path=args.path,
        admin_token=args.admin_token,
        token=args.token,
        organization_id=args.org,
        sdk_clients=args.sdk_clients,
        raw_clients=args.raw_clients,
        rate=args.rate,
        duration=args.duration,
        fault=args.fault,
        fault_every=args.fault_every,
        fault_seconds=args.fault_seconds,
        delay=args.delay,
        restart_command=args.restart_command,
        restarts=int(args.restarts),
        settle=args.settle,
    )

    def progress(text: str) -> None:
        if not args.quiet:
            print(f"{PROG}: {text}", file=sys.stderr, flush=True)

    try:
        result = asyncio.run(run_verify(config, progress))
    except KeyboardInterrupt:
        return 1
    print(render_table(result))
    if args.json is not None:
        write_json(result, args.json)
    if args.junit is not None:
        write_junit(result, args.junit)
    return 0 if result.clean else 1
