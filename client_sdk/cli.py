"""``intraday-live``: the wscat of this protocol, and a live terminal dashboard.

::

    intraday-live listen --url http://localhost:5000 --org acme --channels kpi,alerts
    intraday-live listen --url http://localhost:5000 --org acme --queue support --json
    intraday-live dashboard --url http://localhost:5000 --org acme

``listen`` prints one line per event (``--json``: the envelope, one JSON
object per line) on stdout and the connection's states on stderr. Both
commands reconnect for ever. Exit status: 0 after Ctrl-C or ``--duration``
seconds; 2 for bad arguments or credentials the server rejects; 1 for
another failure.

This module is a process entry point: :func:`main` runs its own event loop
(``asyncio.run``); from code already in a loop, await :func:`listen` or
:func:`client_sdk.dashboard.run_dashboard` instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import TextIO

from .client import IntradayClient
from .config import ClientConfig
from .exceptions import ConnectionLostError, IntradayError, ServerError
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
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


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
        out: where messages go (stdout).
        err: where states and errors go (stderr).

    Returns:
        0 when ``duration`` passed, 2 when the server refused the
        credentials or the subscription, 1 for another failure.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    client = IntradayClient(config)

    def show(message: Message[Payload]) -> None:
        if as_json:
            line = json.dumps(message.envelope.to_wire(), separators=(",", ":"))
        else:
            line = describe(message)
        print(line, file=out, flush=True)

    client.add_listener("*", show)
    client.state_changes.subscribe(lambda state: print(f"{PROG}: {state}", file=err, flush=True))
    deadline = asyncio.timeout(duration)
    try:
        async with deadline:
            await client.connect()
            await _subscribe(client, channels, where or Scope())
            names = ",".join(str(c) for c in channels)
            print(f"{PROG}: subscribed to {names}", file=err, flush=True)
            await client.wait_for_state(ConnectionState.FAILED)
            assert client.failure is not None
            return _exit_status(client.failure, err)
    except TimeoutError as exc:
        if deadline.expired():
            return EXIT_OK
        if isinstance(exc, IntradayError):
            return _exit_status(exc, err)
        raise
    except IntradayError as exc:
        return _exit_status(exc, err)
    finally:
        await client.close()


async def _dashboard(config: ClientConfig, duration: float | None) -> int:
    try:
        from .dashboard import run_dashboard
    except ModuleNotFoundError as exc:
        print(
            f"{PROG}: the dashboard needs {exc.name!r}: pip install 'intraday-live[dashboard]'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    assert config.organization_id is not None
    client = IntradayClient(config)
    try:
        await run_dashboard(client, organization_id=config.organization_id, duration=duration)
    except IntradayError as exc:
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


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not positive")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Live events of an Intraday live-updates server."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    listen_cmd = commands.add_parser("listen", help="print live events, one per line")
    board = commands.add_parser("dashboard", help="a live terminal dashboard (needs rich)")
    # Parsed by client_sdk.contract.cli; listed here for --help.
    commands.add_parser("contract", help="check a server against the protocol", add_help=False)
    # Parsed by client_sdk.load.cli; listed here for --help.
    commands.add_parser(
        "load", help="load-test a server (clients, publisher, report)", add_help=False
    )
    for command, user in ((listen_cmd, "listener"), (board, "dashboard")):
        command.add_argument("--url", required=True, help="server URL, http(s)://host:port")
        command.add_argument("--path", default="/ws", help="Socket.IO path (default /ws)")
        command.add_argument("--org", required=True, help="organization to authenticate into")
        command.add_argument("--user", default=user, help=f"user id (default {user})")
        command.add_argument("--token", help="a JWT, for servers in jwt mode")
        command.add_argument("--duration", type=_positive, help="stop after this many seconds")
    listen_cmd.add_argument("--dept", help="only this department")
    listen_cmd.add_argument("--queue", help="only this queue")
    listen_cmd.add_argument(
        "--channels",
        type=_channels,
        default=(Channel.ALL,),
        help="comma-separated: kpi, backlog, attendance, alerts, notifications (default all)",
    )
    listen_cmd.add_argument("--json", action="store_true", help="print each envelope as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``intraday-live`` console script; returns the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["contract"]:
        from .contract.cli import main as contract_main

        return contract_main(arguments[1:])
    if arguments[:1] == ["load"]:
        from .load.cli import main as load_main

        return load_main(arguments[1:])
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
    except ValueError as exc:
        parser.print_usage(sys.stderr)
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "listen":
            return asyncio.run(
                listen(config, args.channels, where, as_json=args.json, duration=args.duration)
            )
        return asyncio.run(_dashboard(config, args.duration))
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
