"""``intraday-live contract``: check a running server against the protocol.

Example::

    intraday-live contract --url http://127.0.0.1:5000 --admin-token T \\
        --org contract-a --org contract-b --destructive --junit contract.xml

Exit status: 0 when every check passed or was skipped, 1 when any failed,
2 for bad options or a server that cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from .config import ContractConfig
from .model import CheckResult
from .report import format_result, format_summary, write_junit
from .runner import run_contract, select_checks

__all__ = ["build_parser", "config_from_args", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The command line of the contract suite."""
    parser = argparse.ArgumentParser(
        prog="intraday-live contract",
        description="Check a running server against the Intraday live-updates protocol v1.",
    )
    url = os.environ.get("INTRADAY_URL") or None
    parser.add_argument(
        "--url",
        default=url,
        required=url is None,
        help="the server, http://host:port (default $INTRADAY_URL)",
    )
    parser.add_argument("--path", default="/ws", help="the Socket.IO path (default /ws)")
    parser.add_argument("--admin-token", help="bearer token of the management API")
    parser.add_argument(
        "--org",
        action="append",
        dest="orgs",
        metavar="ORG",
        help="an organization the suite may use (repeat; a second one enables the "
        "cross-organization checks; default $INTRADAY_ORG, else contract-org)",
    )
    parser.add_argument("--jwt-secret", help="HS256 secret to sign tokens (jwt-mode servers)")
    parser.add_argument(
        "--destructive", action="store_true", help="also push limits (connections, rate, size)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="skip checks that wait for server timers"
    )
    parser.add_argument(
        "--auth-timeout-wait",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="how long to wait for the server's authentication timeout (default 15)",
    )
    parser.add_argument(
        "--timeout", type=float, default=5.0, metavar="SECONDS", help="per answer (default 5)"
    )
    parser.add_argument(
        "--max-sockets", type=int, default=200, help="sockets a destructive check may open"
    )
    parser.add_argument(
        "--max-burst", type=int, default=2000, help="events a destructive check may send at once"
    )
    parser.add_argument(
        "-k",
        "--select",
        action="append",
        default=[],
        metavar="TEXT",
        help="run only checks whose title or slug contains TEXT (repeatable)",
    )
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    parser.add_argument("--junit", metavar="FILE", help="also write JUnit XML to FILE")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every check's result")
    return parser


def config_from_args(args: argparse.Namespace) -> ContractConfig:
    """The run's configuration from parsed arguments.

    Raises:
        ValueError: an option is invalid.
    """
    return ContractConfig(
        url=args.url,
        organizations=tuple(args.orgs or (os.environ.get("INTRADAY_ORG") or "contract-org",)),
        path=args.path,
        admin_token=args.admin_token,
        jwt_secret=args.jwt_secret,
        destructive=args.destructive,
        quick=args.quick,
        auth_timeout_wait=args.auth_timeout_wait,
        request_timeout=args.timeout,
        event_timeout=args.timeout,
        max_sockets=args.max_sockets,
        max_burst=args.max_burst,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the suite from the command line; the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        for check in select_checks(args.select):
            print(f"{check.slug:<72} {check.title}")
        return 0
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"intraday-live contract: {exc}", file=sys.stderr)
        return 2

    def progress(result: CheckResult) -> None:
        if args.verbose:
            print(format_result(result), flush=True)

    report = asyncio.run(run_contract(config, select=args.select, on_result=progress))
    print(format_summary(report))
    if args.junit:
        write_junit(report, args.junit)
    if report.unreachable is not None:
        return 2
    return 1 if report.failed else 0


def _run(argv: Sequence[str] | None = None) -> None:  # pragma: no cover - python -m entry
    sys.exit(main(list(argv) if argv is not None else None))


if __name__ == "__main__":  # pragma: no cover
    _run()
