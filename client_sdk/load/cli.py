"""``intraday-live load``: real clients, a paced publisher, and what arrived.

::

    intraday-live load --url http://127.0.0.1:5000 --clients 200 --orgs 4 --rate 20 \\
        --duration 60 --processes 2 --admin-token "$ADMIN_TOKEN" --report run.html

It refuses a server that is not on this machine unless ``--i-own-this-server``
is given: a load test is indistinguishable from an attack to whoever runs the
target. Exit status: 0 when nothing was lost, duplicated or reordered; 1 when
something was; 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .._argtypes import positive as _positive
from ._run import LoadConfig, Progress, run_load
from ._server_probe import is_loopback_url
from .report import render_table, write_report

__all__ = ["main"]

PROG = "intraday-live load"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Load-test a live-updates server.")
    p.add_argument("--url", required=True, help="server URL, http(s)://host:port")
    p.add_argument("--path", default="/ws", help="Socket.IO path (default /ws)")
    p.add_argument("--clients", type=_positive(int), default=10, help="connections (default 10)")
    p.add_argument("--orgs", type=_positive(int), default=1, help="organizations (default 1)")
    p.add_argument("--rate", type=_positive(float), default=10.0, help="messages/s in all")
    p.add_argument("--duration", type=_positive(float), default=10.0, help="seconds publishing")
    p.add_argument("--size", type=int, default=0, help="extra payload bytes per message")
    p.add_argument("--processes", type=_positive(int), default=1, help="client processes")
    p.add_argument("--admin-token", help="bearer token of the management API")
    p.add_argument("--token", help="a JWT for the clients (jwt mode)")
    p.add_argument("--report", type=Path, help="write FILE.json or FILE.html")
    p.add_argument("--quiet", action="store_true", help="no live progress display")
    p.add_argument(
        "--i-own-this-server",
        action="store_true",
        help="allow a target that is not on this machine",
    )
    return p


def _display(quiet: bool) -> tuple[Callable[[Progress], None] | None, Callable[[], None]]:
    """A live progress display (rich when installed and on a terminal, else lines)."""
    if quiet:
        return None, lambda: None
    try:
        from rich.live import Live
        from rich.table import Table
    except ModuleNotFoundError:
        has_rich = False
    else:
        has_rich = True
    if not has_rich or not sys.stderr.isatty():

        def line(p: Progress) -> None:
            if int(p.elapsed) % 5 == 0:
                print(
                    f"{PROG}: {p.elapsed:5.0f}s {p.phase} connected={p.connected} "
                    f"published={p.published} delivered={p.delivered}",
                    file=sys.stderr,
                    flush=True,
                )

        return line, lambda: None
    live = Live(refresh_per_second=2, transient=True)
    live.start()

    def show(p: Progress) -> None:
        table = Table(title=f"{PROG}: {p.phase}", show_header=False)
        for name, value in (
            ("elapsed", f"{p.elapsed:.0f} s"),
            ("connected", p.connected),
            ("published", p.published),
            ("delivered", p.delivered),
            ("reconnects", p.reconnects),
            ("server CPU %", p.server_cpu_percent),
            ("server RSS MiB", p.server_rss_mib),
        ):
            table.add_row(name, "n/a" if value is None else str(value))
        live.update(table)

    return show, live.stop


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``intraday-live load``; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not is_loopback_url(args.url) and not args.i_own_this_server:
        parser.error(f"{args.url} is not on this machine: add --i-own-this-server if it is yours")
    if args.report is not None and args.report.suffix.lower() not in (".json", ".html", ".htm"):
        parser.error("--report: use a .json or .html file")
    config = LoadConfig(
        url=args.url,
        path=args.path,
        clients=int(args.clients),
        orgs=int(args.orgs),
        rate=args.rate,
        duration=args.duration,
        size=max(0, args.size),
        processes=int(args.processes),
        admin_token=args.admin_token,
        token=args.token,
    )
    show, stop = _display(args.quiet)
    try:
        figures = asyncio.run(run_load(config, show))
    except KeyboardInterrupt:
        return 1
    finally:
        stop()
    print(render_table(figures))
    if args.report is not None:
        write_report(figures, args.report)
    clean = not (figures["lost"] or figures["duplicated"] or figures["out_of_order"])
    return 0 if clean else 1
