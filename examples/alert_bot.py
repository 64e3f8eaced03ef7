"""An alert bot: serious alerts go to a webhook and to an incident log, through outages.

What it does, step by step:

1. Connects to an Intraday live-updates server and keeps reconnecting for as
   long as it runs (``reconnection_attempts=None``): a bot must outlive server
   restarts. The SDK restores the subscription after every reconnect and
   replays what was published meanwhile; with ``resume_store`` (``--state``)
   that holds across restarts of the bot too.
2. Observes the ``alert_notifications`` hook (a reactivex observable) and
   builds the bot's logic from Rx operators:

   * ``filter``: alerts the incident log already holds are skipped (the
     snapshot a new subscription starts with repeats the open ones, with
     their ids), then only new or escalated alerts of severity ``high`` or
     above (``--min-severity``);
   * ``group_by`` queue, then ``throttle_first`` in each group: at most one
     webhook call per queue per ``--throttle`` seconds (``0``: every one),
     so a flapping queue does not flood the channel. Time runs on the
     asyncio scheduler.

3. Writes every serious alert to an incident log (JSON lines), then posts the
   throttled ones to the webhook (any endpoint that takes a JSON POST, such
   as a Slack or Teams incoming webhook) and logs each delivery.
4. Logs each outage once it is back, and each real gap: a stream whose
   missed messages the server could no longer replay (its log aged out, or a
   server without durable storage restarted). Alerts that were replayed are
   handled like live ones, marked ``replayed`` in the log.
5. Ends, with status 3 and a line saying so, when the server disconnects it
   for good (an operator's kick): it does not come back on its own.

Run it against a server (``intraday-live-server serve --simulate`` gives one
with a simulated feed)::

    python examples/alert_bot.py --url http://127.0.0.1:5000 --org acme \\
        --webhook http://127.0.0.1:8080/hook --log incidents.jsonl

Every flag also reads an environment variable: ``INTRADAY_URL``,
``INTRADAY_ORG``, ``ALERT_BOT_WEBHOOK``, ``ALERT_BOT_LOG``,
``ALERT_BOT_STATE``, ``DURATION``.
Without ``--duration`` it runs until Ctrl-C (or SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import reactivex
from reactivex import operators as ops
from reactivex.disposable import CompositeDisposable
from reactivex.observable import GroupedObservable
from reactivex.scheduler.eventloop import AsyncIOScheduler

from client_sdk import ClientConfig, ConnectionState, IntradayClient, IntradayError, Message
from client_sdk.gaps import Gap
from client_sdk.hooks import alert_notifications, connection_status
from client_sdk.protocol import AlertPayload, ServerEvent, Severity

Alert = Message[AlertPayload]

NEWS = frozenset({ServerEvent.ALERT_TRIGGERED, ServerEvent.ALERT_ESCALATED})
"""The events worth waking someone for; acknowledged and resolved alerts are not."""

REPLAYED = "alerts raised meanwhile were replayed; a gap line names any that could not be"


class ServerEndedConnection(Exception):
    """The server disconnected the bot for good (an operator's kick, its rate limit)."""


@dataclass(frozen=True)
class BotOptions:
    """The bot's settings (see :func:`parse_args` for what each one means)."""

    url: str
    org: str
    user: str
    webhook: str | None
    log: Path
    state: Path
    min_severity: Severity
    throttle: float
    duration: float | None
    max_retry_delay: float


def parse_args(argv: Sequence[str] | None = None) -> BotOptions:
    """Read the options from ``argv`` (the command line by default) and the environment."""
    env = os.environ.get
    parser = argparse.ArgumentParser(description="Post serious Intraday alerts to a webhook.")
    parser.add_argument("--url", default=env("INTRADAY_URL", "http://127.0.0.1:5000"))
    parser.add_argument("--org", default=env("INTRADAY_ORG", "acme"), help="organization")
    parser.add_argument("--user", default="alert-bot", help="user id to authenticate as")
    parser.add_argument(
        "--webhook", default=env("ALERT_BOT_WEBHOOK"), help="URL to POST to (default: print)"
    )
    parser.add_argument(
        "--log", type=Path, default=Path(env("ALERT_BOT_LOG", "incidents.jsonl")), help="JSONL"
    )
    parser.add_argument(
        "--state",
        type=Path,
        default=env("ALERT_BOT_STATE"),
        help="resume file: where the bot is in each stream (default: the log's name + .resume)",
    )
    parser.add_argument(
        "--min-severity", type=Severity, choices=list(Severity), default=Severity.HIGH
    )
    parser.add_argument(
        "--throttle",
        type=_not_negative,
        default=300.0,
        help="seconds between two posts per queue (0: post every alert)",
    )
    duration = env("DURATION")
    parser.add_argument(
        "--duration",
        type=float,
        default=float(duration) if duration else None,
        help="stop after this many seconds (default: run until Ctrl-C)",
    )
    parser.add_argument(
        "--max-retry-delay", type=float, default=30.0, help="cap on the reconnect backoff"
    )
    args = parser.parse_args(argv)
    return BotOptions(
        url=args.url,
        org=args.org,
        user=args.user,
        webhook=args.webhook,
        log=args.log,
        state=args.state or args.log.with_name(args.log.name + ".resume"),
        min_severity=args.min_severity,
        throttle=args.throttle,
        duration=args.duration,
        max_retry_delay=args.max_retry_delay,
    )


def _not_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative")
    return value


def now() -> str:
    """The current time as ISO 8601 UTC, for log lines."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class IncidentLog:
    """An append-only JSON-lines file, one object per line, flushed line by line.

    It also remembers which messages it holds (:attr:`handled`, read back
    from the file at start), so an alert is never handled twice, across
    restarts of the bot included.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.handled: set[str] = set()
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                with contextlib.suppress(ValueError):
                    entry = json.loads(line)
                    if entry.get("kind") == "alert" and entry.get("message_id"):
                        self.handled.add(entry["message_id"])
        self._file = path.open("a", encoding="utf-8")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._file.close()

    def write(self, kind: str, **fields: Any) -> None:
        """Append ``{"kind": kind, "at": now, **fields}``."""
        line = json.dumps({"kind": kind, "at": now(), **fields})
        self._file.write(line + "\n")
        self._file.flush()

    def alert(self, message: Alert) -> None:
        """Log one serious alert (posted or throttled alike)."""
        self.handled.add(message.id)
        self.write("alert", **describe(message), replayed=message.replayed)

    def is_new(self, message: Alert) -> bool:
        """Whether ``message`` was not handled before (the snapshot repeats open alerts)."""
        return message.id not in self.handled


def describe(message: Alert) -> dict[str, Any]:
    """The fields of an alert that an on-call human needs."""
    alert = message.payload
    return {
        "message_id": message.id,
        "event": message.event.value,
        "alert_id": alert.alert_id,
        "rule_name": alert.rule_name,
        "severity": alert.severity.value,
        "organization_id": alert.organization_id,
        "department_id": alert.department_id,
        "queue_name": alert.queue_name,
        "message": alert.message,
    }


# -- the Rx part: which alerts, and how often --------------------------------------

AlertsOperator = Callable[[reactivex.Observable[Alert]], reactivex.Observable[Alert]]


def serious(min_severity: Severity) -> AlertsOperator:
    """New or escalated alerts of ``min_severity`` or worse."""
    return ops.filter(
        lambda message: message.event in NEWS and message.payload.severity.rank >= min_severity.rank
    )


def throttled_per_queue(window: float, scheduler: reactivex.abc.SchedulerBase) -> AlertsOperator:
    """At most one alert per queue per ``window`` seconds: the first one of each burst.

    A ``window`` of 0 lets every alert through (``throttle_first`` itself
    refuses a window of 0 with an error, which would end each queue's stream).
    """
    if window <= 0:
        return lambda alerts: alerts

    def first_of_each_burst(queue: GroupedObservable[str, Alert]) -> reactivex.Observable[Alert]:
        return queue.pipe(ops.throttle_first(window, scheduler=scheduler))

    def operator(alerts: reactivex.Observable[Alert]) -> reactivex.Observable[Alert]:
        return alerts.pipe(
            ops.group_by(lambda message: message.payload.queue_name or "(no queue)"),
            ops.flat_map(first_of_each_burst),  # one throttled stream per queue, merged
        )

    return operator


# -- the asyncio part: posting, and noticing outages ------------------------------


async def post_alerts(outbox: asyncio.Queue[Alert], webhook: str | None, log: IncidentLog) -> None:
    """Post the alerts put in ``outbox`` one at a time, in order; log each outcome.

    Rx observers are synchronous, so they only put alerts in the queue and
    this task does the network I/O. A failed post is logged and not retried.
    """
    async with httpx.AsyncClient(timeout=10.0) as http:
        while True:
            message = await outbox.get()
            try:
                alert = message.payload
                where = alert.queue_name or alert.organization_id
                text = f"[{alert.severity.value.upper()}] {alert.rule_name} on {where}"
                if alert.message:
                    text += f": {alert.message}"
                if webhook is None:
                    print(text)
                    log.write("notified", alert_id=alert.alert_id, via="stdout")
                    continue
                try:
                    response = await http.post(
                        webhook, json={"text": text, "alert": describe(message)}
                    )
                    response.raise_for_status()
                except httpx.HTTPError as exc:
                    log.write("webhook_failed", alert_id=alert.alert_id, error=str(exc))
                else:
                    log.write("notified", alert_id=alert.alert_id, status=response.status_code)
            finally:
                outbox.task_done()


class OutageWatch:
    """Observes the connection state and logs each outage once the bot is back.

    ``on_failed`` is called if the client gives up (only for errors that
    retrying cannot fix, such as refused credentials), or when the server
    ended the connection for good (:meth:`lost`; :attr:`ended_by_server`
    then says why).
    """

    def __init__(self, log: IncidentLog, on_failed: Callable[[], object]) -> None:
        self._log = log
        self._on_failed = on_failed
        self._was_up = False
        self._down_since: str | None = None
        self.ended_by_server: str | None = None

    def lost(self, client: IntradayClient, reason: str) -> None:
        """``on_disconnect``: a loss the client does not retry (``disconnected``) ends the bot."""
        if client.state is ConnectionState.DISCONNECTED:
            self.ended_by_server = reason
            self._log.write("ended_by_server", reason=reason)
            self._on_failed()

    def gap(self, gap: Gap) -> None:
        """A real gap: messages of a stream that the server could not replay."""
        self._log.write("gap", stream=gap.stream, reason=str(gap.reason), last_seq=gap.last_seq)
        print(f"gap in {gap.stream}: alerts may be missing ({gap.reason})")

    def __call__(self, state: ConnectionState) -> None:
        if state is ConnectionState.AUTHENTICATED:
            if self._down_since is not None:
                back = now()
                self._log.write(
                    "outage",
                    disconnected_at=self._down_since,
                    reconnected_at=back,
                    note=REPLAYED,
                )
                print(f"disconnected at {self._down_since}, reconnected at {back}; {REPLAYED}")
                self._down_since = None
            self._was_up = True
        elif state is ConnectionState.RECONNECTING and self._was_up and self._down_since is None:
            self._down_since = now()
            print(f"lost the server at {self._down_since}; reconnecting")
        elif state is ConnectionState.FAILED:
            self._on_failed()


# -- putting it together ---------------------------------------------------------------


async def run_bot(options: BotOptions, stop: asyncio.Event | None = None) -> None:
    """Run until ``stop`` is set or ``options.duration`` has passed."""
    stop = stop if stop is not None else asyncio.Event()
    try:
        async with asyncio.timeout(options.duration) as deadline:
            await _run(options, stop)
    except TimeoutError:
        if not deadline.expired():
            raise  # a timeout of something inside, not the end of our run


async def _run(options: BotOptions, stop: asyncio.Event) -> None:
    config = ClientConfig(
        url=options.url,
        user_id=options.user,
        organization_id=options.org,
        reconnection_attempts=None,  # never give up: a bot outlives server restarts
        reconnection_delay=min(1.0, options.max_retry_delay),
        reconnection_delay_max=options.max_retry_delay,
        jitter=0.2,  # a fleet of bots does not reconnect in lockstep
        resume_store=options.state,  # a restarted bot resumes where it stopped
    )
    scheduler = AsyncIOScheduler(asyncio.get_running_loop())
    outbox: asyncio.Queue[Alert] = asyncio.Queue()
    with IncidentLog(options.log) as log:
        async with IntradayClient(config) as client:
            alerts = alert_notifications(client)  # the organization's alerts, every queue
            # Shared: the "already handled?" test runs once per message, before
            # the log's observer marks it handled.
            important = alerts.pipe(
                ops.filter(log.is_new), serious(options.min_severity), ops.share()
            )
            watch = OutageWatch(log, on_failed=stop.set)
            client.on(on_gap=watch.gap, on_disconnect=lambda reason: watch.lost(client, reason))
            # Two observers share the hook's one server subscription: the log
            # sees every serious alert, the webhook only the throttled stream.
            with CompositeDisposable(
                connection_status(client).subscribe(watch),
                important.subscribe(log.alert),
                important.pipe(throttled_per_queue(options.throttle, scheduler)).subscribe(
                    outbox.put_nowait
                ),
            ):
                await alerts.wait_subscribed()  # (through outages, if the server is down)
                print(f"watching {options.org}'s alerts on {options.url}; log: {options.log}")
                poster = asyncio.create_task(post_alerts(outbox, options.webhook, log))
                try:
                    await stop.wait()
                    with contextlib.suppress(TimeoutError):  # post what is queued, briefly
                        async with asyncio.timeout(5):
                            await outbox.join()
                    if client.failure is not None:
                        log.write("failed", error=str(client.failure))
                        raise client.failure
                    if watch.ended_by_server is not None:
                        raise ServerEndedConnection(
                            f"the server ended the connection ({watch.ended_by_server}): "
                            "an operator's disconnect or its limits; not reconnecting"
                        )
                finally:
                    poster.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await poster


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run the bot; Ctrl-C or SIGTERM stop it cleanly (status 0).

    Status 1 when the server refused the bot for good (bad credentials,
    another organization): retrying cannot fix that. Status 3 when the server
    disconnected the bot (an operator's kick): it does not come back by itself.
    """
    options = parse_args(argv)

    async def run() -> None:
        stop = asyncio.Event()
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await run_bot(options, stop)

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    except IntradayError as exc:
        print(f"alert_bot: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except ServerEndedConnection as exc:
        print(f"alert_bot: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
