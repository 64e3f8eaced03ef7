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

This module is a process entry point: :func:`main` runs its own event loop
(``asyncio.run``); from code already in a loop, await :func:`listen` or
:func:`client_sdk.dashboard.run_dashboard` instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TextIO

from ._argtypes import positive
from .client import IntradayClient
from .config import ClientConfig
from .exceptions import ConnectionLostError, IntradayError, ServerError
from .gaps import Gap
from .messages import Message
from .protocol import (
    AlertPayload,
    AttendanceCheckPayload,
    AttendancePayload,
    BacklogPayload,
    Channel,
    ConnectionState,
    KpiPayload,
    MetricAlertPayload,
    Payload,
    Scope,
    SystemPayload,
)

__all__ = ["describe", "listen", "main"]

PROG = "intraday-live"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ENDED = 0, 1, 2, 3
CONNECT_TIMEOUT = 10.0
"""Seconds the first connection may take, retries included, before the command gives up."""


def _details(payload: Payload) -> list[str]:
    details: list[str] = []
    if isinstance(payload, KpiPayload):
        if payload.utilization is not None:
            details.append(f"util={payload.utilization.current_utilization:.1f}%")
        if payload.service_level is not None:
            details.append(f"sl={payload.service_level.current:.1f}%")
        if payload.health_score is not None:
            details.append(f"health={payload.health_score:.0f}")
        if payload.headcount_gap is not None and payload.headcount_gap.gap is not None:
            details.append(f"gap={payload.headcount_gap.gap:+.1f}")
        if payload.sla_risk is not None:
            details.append(f"risk={payload.sla_risk.level}")
    elif isinstance(payload, BacklogPayload):
        if payload.total_items is not None:
            details.append(f"items={payload.total_items}")
        if payload.oldest_item_age_seconds is not None:
            details.append(f"oldest={payload.oldest_item_age_seconds:.0f}s")
        if payload.sla_breaches is not None:
            details.append(f"breaches={payload.sla_breaches}")
    elif isinstance(payload, AttendancePayload):
        if payload.present is not None:
            details.append(f"present={payload.present}/{payload.scheduled or '?'}")
        if payload.adherence is not None:
            details.append(f"adherence={payload.adherence:.1f}%")
    elif isinstance(payload, AttendanceCheckPayload):
        details.append(f"employee={payload.employee_name or payload.employee_id or '?'}")
    elif isinstance(payload, AlertPayload):
        details.append(f"[{payload.severity}] {payload.rule_name} ({payload.alert_id})")
        if payload.status is not None:
            details.append(f"status={payload.status}")
    elif isinstance(payload, MetricAlertPayload):
        if payload.severity is not None:
            details.append(f"[{payload.severity}]")
        if payload.metric is not None:
            details.append(f"{payload.metric}={payload.value} (threshold {payload.threshold})")
        if payload.message:
            details.append(payload.message)
    elif isinstance(payload, SystemPayload):
        details.append(payload.message)
    return details


def describe(message: Message[Payload]) -> str:
    """One readable line for a message: time, event, target and the payload's main figures."""
    target = message.target
    where = "/".join(
        v for v in (target.organization_id, target.department_id, target.queue_name) if v
    )
    stamp = message.timestamp.strftime("%H:%M:%S.%f")[:-3]
    line = f"{stamp} {message.event:<22} {where or '*':<30} {' '.join(_details(message.payload))}"
    if message.replayed:
        line += "  (replayed)"
    elif message.snapshot:
        line += "  (snapshot)"
    return line.rstrip()


async def _subscribe(client: IntradayClient, channels: Sequence[Channel], where: Scope) -> None:
    """Subscribe, waiting out a reconnect that races the first request."""
    while True:
        try:
            await client.subscribe(
                channels,
                organization_id=where.organization_id,
                department_id=where.department_id,
                queue_name=where.queue_name,
            )
            return
        except ConnectionLostError:
            if client.state is ConnectionState.FAILED or client.failure is not None:
                raise
            await client.wait_for_state(ConnectionState.AUTHENTICATED)


def _exit_status(error: IntradayError, err: TextIO) -> int:
    print(f"{PROG}: {error}", file=err, flush=True)
    if isinstance(error, ServerError) and not error.retryable:
        return EXIT_USAGE  # rejected credentials, another organization
    return EXIT_FAILED


async def listen(
    config: ClientConfig,
    channels: Sequence[Channel] = (Channel.ALL,),
    where: Scope | None = None,
    *,
    as_json: bool = False,
    duration: float | None = None,
    connect_timeout: float = CONNECT_TIMEOUT,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Print every message of a subscription until ``duration`` passes; return an exit status.

    Args:
        config: who to connect and authenticate as.
        channels: what to subscribe to.
        where: department and queue filter (the organization defaults to the
            authenticated one).
        as_json: print each envelope as one JSON object per line.
        duration: stop after this many seconds (``None``: until cancelled).
        connect_timeout: seconds the first connection may take (retries included).
        out: where messages go (stdout).
        err: where states and errors go (stderr).

    Returns:
        0 when ``duration`` passed or ``out`` was closed (a pipe's reader
        left), 2 when the server refused the credentials or the
        subscription, 3 when the server ended the connection (a kick: the
        client does not come back), 1 for another failure (never connected
        included).
    """
    out = out or sys.stdout
    err = err or sys.stderr
    client = IntradayClient(config)
    closed = asyncio.Event()

    def show(message: Message[Payload]) -> None:
        if closed.is_set():
            return
        if as_json:
            line = json.dumps(message.envelope.to_wire(), separators=(",", ":"))
        else:
            line = describe(message)
        try:
            print(line, file=out, flush=True)
        except BrokenPipeError:
            closed.set()

    def gap(missing: Gap) -> None:
        print(
            f"{PROG}: gap in {missing.stream}: messages may be missing ({missing.reason})",
            file=err,
            flush=True,
        )

    ended = _Ended(client)
    client.add_listener("*", show)
    client.on(on_gap=gap, on_disconnect=ended.lost, on_error=ended.error)
    client.state_changes.subscribe(lambda state: print(f"{PROG}: {state}", file=err, flush=True))
    deadline = asyncio.timeout(duration)
    connected = False
    try:
        async with deadline:
            await _connect(client, connect_timeout)
            connected = True
            await _subscribe(client, channels, where or Scope())
            names = ",".join(str(c) for c in channels)
            print(f"{PROG}: subscribed to {names}", file=err, flush=True)
            await _first(client.wait_for_state(ConnectionState.FAILED), closed.wait(), ended.wait())
            if closed.is_set():
                _mute(out)
                return EXIT_OK
            if ended.reason is not None:
                print(f"{PROG}: {ended.describe()}", file=err, flush=True)
                return EXIT_ENDED
            assert client.failure is not None
            return _exit_status(client.failure, err)
    except _NeverConnected:
        return _never_connected(client, connect_timeout, err)
    except TimeoutError as exc:
        if deadline.expired():
            return EXIT_OK if connected else _never_connected(client, connect_timeout, err)
        if isinstance(exc, IntradayError):
            return _exit_status(exc, err)
        raise
    except IntradayError as exc:
        return _exit_status(exc, err)
    finally:
        await client.close()


class _Ended:
    """Watches for a final disconnect: the server ended the connection and the client stays out.

    The SDK does not come back after a server's disconnect (an operator's
    kick, the rate limit, the authentication timeout; see
    :mod:`client_sdk._disconnect_policy`): the command must end then, saying
    so, instead of idling for ever.
    """

    def __init__(self, client: IntradayClient) -> None:
        self._client = client
        self._event = asyncio.Event()
        self.reason: str | None = None
        self.last_server_error: ServerError | None = None

    def lost(self, reason: str) -> None:
        # The state is set before on_disconnect runs: DISCONNECTED means no retry.
        if self._client.state is ConnectionState.DISCONNECTED:
            self.reason = reason
            self._event.set()

    def error(self, error: IntradayError) -> None:
        if isinstance(error, ServerError):
            self.last_server_error = error

    async def wait(self) -> None:
        await self._event.wait()

    def describe(self) -> str:
        """The one line that says who ended the connection, and why if the server said."""
        line = f"the server ended the connection ({self.reason}); not reconnecting"
        if self.last_server_error is not None:
            line += f"; its last error: {self.last_server_error}"
        else:
            line += " (an operator's disconnect, or the server's own limits)"
        return line


class _NeverConnected(Exception):
    """The first connection did not succeed within the connect timeout."""


async def _connect(client: IntradayClient, timeout: float) -> None:
    """The first connection, given ``timeout`` seconds (its own retries included)."""
    try:
        async with asyncio.timeout(timeout) as limit:
            await client.connect()
    except TimeoutError:
        if limit.expired():
            raise _NeverConnected from None
        raise


async def _first(*waits: Coroutine[Any, Any, Any]) -> None:
    """Wait until the first of ``waits`` ends; cancel the others."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _never_connected(client: IntradayClient, timeout: float, err: TextIO) -> int:
    cause = client.failure or client.statistics().last_error
    url = f"{client.config.url} (path {client.config.path})"
    if cause is None:
        print(f"{PROG}: connect to {url}: no answer within {timeout:g} s", file=err, flush=True)
    else:
        print(f"{PROG}: never connected: {cause}", file=err, flush=True)
    if isinstance(cause, ServerError) and not cause.retryable:
        return EXIT_USAGE
    return EXIT_FAILED


def _mute(out: TextIO) -> None:
    """After a closed pipe: point the stream at /dev/null so the exit's flush stays quiet."""
    try:
        fd = out.fileno()
    except (OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


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
        await _connect(client, connect_timeout)
        await run_dashboard(client, organization_id=config.organization_id, duration=duration)
    except _NeverConnected:
        return _never_connected(client, connect_timeout, sys.stderr)
    except IntradayError as exc:
        if client.failure is None and client.state is ConnectionState.DISCONNECTED:
            print(f"{PROG}: {exc}", file=sys.stderr, flush=True)  # the server ended it
            return EXIT_ENDED
        return _exit_status(exc, sys.stderr)
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
