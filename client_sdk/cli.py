"""``intraday-live``: the wscat of this protocol, and a live terminal dashboard.

::

    intraday-live listen --url http://localhost:5000 --org acme --channels kpi,alerts
    intraday-live listen --url http://localhost:5000 --org acme --queue support --json
    intraday-live dashboard --url http://localhost:5000 --org acme

``listen`` prints one line per event (``--json``: the envelope, one JSON
object per line) on stdout, and the connection's states and every failed
connection attempt (its cause and the delay before the next) on stderr.
``--url``, ``--org`` and ``--token`` default to ``INTRADAY_URL``,
``INTRADAY_ORG`` and ``INTRADAY_TOKEN``. Once connected, both commands
reconnect for ever; a first connection that does not succeed within
``--connect-timeout`` seconds ends the command with one line naming the
cause (refused, HTTP 404 on the path, TLS mismatch, timeout). A server that
ends the connection itself (an operator's disconnect, its rate limit) ends
the command too, with one line saying so. Exit status: 0 after Ctrl-C or
SIGTERM, ``--duration`` seconds or a closed stdout (``| head``); 2 for bad
arguments or credentials the server rejects; 3 when the server ended the
connection; 1 for another failure, never having connected included.

This module is a process entry point: :func:`main` parses the arguments and
runs its own event loop (``asyncio.run``); from code already in a loop,
await :func:`listen` or :func:`client_sdk.dashboard.run_dashboard` instead.
The listen command itself is in :mod:`client_sdk._cli_listen`, its lines in
:mod:`client_sdk._cli_describe`, the first connection and the exit statuses
in :mod:`client_sdk._cli_connect`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TextIO

from ._argtypes import positive
from ._cli_connect import (
    CONNECT_TIMEOUT,
    EXIT_ENDED,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    NeverConnected,
    connect_first,
    exit_status,
    never_connected,
)
from ._cli_describe import describe
from ._cli_listen import listen
from ._client import IntradayClient
from .config import ClientConfig
from .exceptions import IntradayError
from .protocol import Channel, ConnectionState, Scope

__all__ = ["describe", "listen", "main"]


def _log_attempts(err: TextIO) -> None:
    """Show the SDK's INFO lines (each failed attempt, its cause and delay) on ``err``.

    Only INFO: the SDK's warning when it gives up is printed by the command
    itself, once.
    """
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
    handler.addFilter(lambda record: record.levelno == logging.INFO)
    logger = logging.getLogger("client_sdk")
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)


async def _dashboard(config: ClientConfig, duration: float | None, connect_timeout: float) -> int:
    try:
        from .dashboard import run_dashboard
    except ModuleNotFoundError as exc:
        print(
            f"{PROG}: the dashboard needs {exc.name!r}: "
            "pip install -e '.[dashboard]' (from a checkout)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    assert config.organization_id is not None
    client = IntradayClient(config)
    try:
        await connect_first(client, connect_timeout)
        await run_dashboard(client, organization_id=config.organization_id, duration=duration)
    except NeverConnected:
        return never_connected(client, connect_timeout, sys.stderr)
    except IntradayError as exc:
        if client.failure is None and client.state is ConnectionState.DISCONNECTED:
            print(f"{PROG}: {exc}", file=sys.stderr, flush=True)  # the server ended it
            return EXIT_ENDED
        return exit_status(exc, sys.stderr)
    finally:
        await client.close()
    return EXIT_OK


def _channels(text: str) -> tuple[Channel, ...]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("no channel given")
    try:
        return tuple(Channel(name) for name in names)
    except ValueError:
        known = ", ".join(c.value for c in Channel)
        raise argparse.ArgumentTypeError(f"{text!r}: channels are {known}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Live events of an Intraday live-updates server."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    listen_cmd = commands.add_parser("listen", help="print live events, one per line")
    board = commands.add_parser("dashboard", help="a live terminal dashboard (needs rich)")
    # Parsed by client_sdk.contract.cli; listed here for --help.
    commands.add_parser("contract", help="check a server against the protocol", add_help=False)
    # Parsed by client_sdk.load.cli; listed here for --help.
    commands.add_parser(
        "load", help="load-test a server (clients, publisher, report)", add_help=False
    )
    # Parsed by client_sdk.verify.cli; listed here for --help.
    commands.add_parser(
        "verify", help="measure delivery under network faults (lost, duplicated...)", add_help=False
    )
    url, org, token = (
        os.environ.get(f"INTRADAY_{name}") or None for name in ("URL", "ORG", "TOKEN")
    )
    for command, user in ((listen_cmd, "listener"), (board, "dashboard")):
        command.add_argument(
            "--url",
            default=url,
            required=url is None,
            help="server URL, http(s)://host:port (default $INTRADAY_URL)",
        )
        command.add_argument("--path", default="/ws", help="Socket.IO path (default /ws)")
        command.add_argument(
            "--org",
            default=org,
            required=org is None,
            help="organization to authenticate into (default $INTRADAY_ORG)",
        )
        command.add_argument("--user", default=user, help=f"user id (default {user})")
        command.add_argument(
            "--token",
            default=token,
            help="a JWT, for servers in jwt mode (default $INTRADAY_TOKEN)",
        )
        command.add_argument(
            "--duration", type=positive(float), help="stop after this many seconds"
        )
        command.add_argument(
            "--connect-timeout",
            type=positive(float),
            default=CONNECT_TIMEOUT,
            help=f"give up if the first connection takes longer (default {CONNECT_TIMEOUT:g} s)",
        )
    listen_cmd.add_argument("--dept", help="only this department")
    listen_cmd.add_argument("--queue", help="only this queue")
    listen_cmd.add_argument(
        "--channels",
        type=_channels,
        default=(Channel.ALL,),
        help="comma-separated: kpi, backlog, attendance, alerts, notifications (default all)",
    )
    listen_cmd.add_argument("--json", action="store_true", help="print each envelope as JSON")
    listen_cmd.add_argument(
        "--since-last",
        nargs="?",
        const="",
        metavar="FILE",
        help="resume where the last run with this file stopped: what was missed meanwhile "
        "comes first, marked (replayed); a gap is said on stderr "
        f"(default file: {_RESUME_DIR}/listen-ORG-USER.resume)",
    )
    return parser


_RESUME_DIR = "$XDG_STATE_HOME/intraday-live (~/.local/state/intraday-live)"


def resume_file(org: str, user: str) -> Path:
    """The default resume file of ``listen --since-last`` for ``org`` and ``user``."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(state) / "intraday-live" / f"listen-{org}-{user}.resume"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``intraday-live`` console script; returns the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["contract"]:
        from .contract.cli import main as contract_main

        return contract_main(arguments[1:])
    if arguments[:1] == ["load"]:
        from .load.cli import main as load_main

        return load_main(arguments[1:])
    if arguments[:1] == ["verify"]:
        from .verify.cli import main as verify_main

        return verify_main(arguments[1:])
    parser = _parser()
    args = parser.parse_args(arguments)
    try:
        config = ClientConfig(
            url=args.url,
            path=args.path,
            user_id=args.user,
            organization_id=args.org,
            token=args.token,
            reconnection_attempts=None,
            jitter=0.2,
        )
        if args.command == "listen":
            where = Scope(department_id=args.dept, queue_name=args.queue)  # validates them
            if args.since_last is not None:
                path = (
                    Path(args.since_last) if args.since_last else resume_file(args.org, args.user)
                )
                path.parent.mkdir(parents=True, exist_ok=True)
                config = config.replace(resume_store=path)
    except ValueError as exc:
        parser.print_usage(sys.stderr)
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    _log_attempts(sys.stderr)
    try:
        if args.command == "listen":
            return asyncio.run(
                _until_terminated(
                    listen(
                        config,
                        args.channels,
                        where,
                        as_json=args.json,
                        duration=args.duration,
                        connect_timeout=args.connect_timeout,
                    )
                )
            )
        return asyncio.run(
            _until_terminated(_dashboard(config, args.duration, args.connect_timeout))
        )
    except KeyboardInterrupt:
        return EXIT_OK


async def _until_terminated(command: Coroutine[Any, Any, int]) -> int:
    """Run ``command``; SIGTERM stops it as Ctrl-C does (the client closes, the resume file kept).

    Without a handler SIGTERM killed the process where it stood (exit 143),
    before the client's close.
    """
    task = asyncio.ensure_future(command)
    loop = asyncio.get_running_loop()
    terminated = False

    def terminate() -> None:
        nonlocal terminated
        terminated = True
        task.cancel()

    try:
        loop.add_signal_handler(signal.SIGTERM, terminate)
    except (NotImplementedError, RuntimeError):  # no signal handlers here (Windows)
        return await task
    try:
        return await task
    except asyncio.CancelledError:
        if not terminated:
            raise
        print(f"{PROG}: stopped by SIGTERM", file=sys.stderr, flush=True)
        return EXIT_OK
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("intraday-live")
    except PackageNotFoundError:  # a checkout on sys.path, not installed
        return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
