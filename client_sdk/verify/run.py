"""One verify run: subscribers behind the fault proxy, numbered publishes, faults, the tally.

The subscribers connect to the server through :class:`~.proxy.TcpProxy` on
loopback; the publisher talks to the server directly (its publishes carry
idempotency keys and are retried, see :class:`~client_sdk.AdminClient`).
While messages are published at a steady rate the fault is applied every
``fault_every`` seconds for ``fault_seconds``:

- ``drop``: every connection is cut (RST) and new ones refused for the
  fault's length, then let through again: the "repeated 2 s drops";
- ``blackhole``: nothing forwarded either way, connections left open;
- ``delay``: every byte held ``delay`` seconds each way;
- ``refuse``: connections cut, new ones answered HTTP 503 and closed;
- ``restart``: the user's ``restart_command`` (a shell command that restarts
  the server and returns), ``restarts`` times over the run, each followed by
  a wait for ``GET /health``;
- ``none``: a clean run.

After the last publish the run waits until every subscriber has every
message, or until nothing arrived for ``settle`` seconds and every subscriber
is connected and subscribed again (one still reconnecting has yet to report
what it missed; at most 30 s more, then a note says so).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from ..admin import AdminClient
from ..config import ClientConfig
from ..exceptions import IntradayError
from ..protocol import Channel, stream_name
from .ledger import Ledger, Published, StreamFigures, tally
from .proxy import TcpProxy
from .subscribers import RUN_FIELD, RawSubscriber, SdkSubscriber

__all__ = ["FAULTS", "Fault", "VerifyConfig", "VerifyResult", "run_verify"]

Fault = Literal["drop", "blackhole", "delay", "refuse", "restart", "none"]
FAULTS: tuple[Fault, ...] = ("drop", "blackhole", "delay", "refuse", "restart", "none")

TIMESTAMP = "2026-12-07T12:00:00Z"

_CHANNELS: tuple[Channel, ...] = (Channel.KPI, Channel.ALERTS)


@dataclass(frozen=True)
class VerifyConfig:
    """What a run does (the ``intraday-live verify`` flags)."""

    url: str
    path: str = "/ws"
    admin_token: str | None = None
    token: str | None = None
    """A JWT for the subscribers (a server in jwt mode); its claims name the organization."""
    organization_id: str | None = None
    """The run's organization; default ``verify-<run id>``, where nothing else publishes."""
    sdk_clients: int = 2
    raw_clients: int = 2
    rate: float = 20.0
    """Messages per second, over the streams in turn."""
    duration: float = 30.0
    fault: Fault = "drop"
    fault_every: float = 5.0
    fault_seconds: float = 2.0
    delay: float = 0.5
    restart_command: str | None = None
    restarts: int = 5
    settle: float = 10.0
    channels: tuple[Channel, ...] = _CHANNELS


@dataclass
class VerifyResult:
    """A run's figures: per stream and subscriber kind, and the headline."""

    config: VerifyConfig
    ledger: Ledger
    rows: list[StreamFigures]
    faults_applied: int
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> StreamFigures:
        """Every row added up."""
        total = StreamFigures("all", "all")
        for row in self.rows:
            total.add(row)
        total.published = sum(1 for p in self.ledger.published.values() if p.failed is None)
        total.publish_failures = sum(1 for p in self.ledger.published.values() if p.failed)
        return total

    @property
    def scenario(self) -> str:
        """What the headline's percentage was measured under."""
        c = self.config
        if c.fault == "drop":
            return f"repeated {c.fault_seconds:g} s drops (every {c.fault_every:g} s)"
        if c.fault == "restart":
            return f"{self.faults_applied} server restarts"
        if c.fault == "none":
            return "no fault"
        return f"repeated {c.fault_seconds:g} s {c.fault} (every {c.fault_every:g} s)"

    @property
    def clean(self) -> bool:
        """Nothing lost in silence, duplicated, reordered or invented anywhere."""
        return all(row.clean for row in self.rows)


def _payload(channel: Channel, org: str, run_id: str, n: int) -> dict[str, Any]:
    base: dict[str, Any] = {
        "organization_id": org,
        "queue_name": "verify",
        "timestamp": TIMESTAMP,
        RUN_FIELD: run_id,
        "n": n,
    }
    if channel is Channel.ALERTS:
        base.update(alert_id=f"verify-{run_id}-{n}", rule_name="verify", severity="low")
    elif channel is Channel.NOTIFICATIONS:
        base["message"] = f"verify {run_id} #{n}"
    return base


async def _publish_one(
    admin: AdminClient, channel: Channel, payload: dict[str, Any], entry: Published
) -> None:
    try:
        if channel is Channel.KPI:
            result = await admin.publish_kpi(payload)
        elif channel is Channel.ALERTS:
            result = await admin.publish_alert(payload)
        elif channel is Channel.BACKLOG:
            result = await admin.publish_backlog(payload)
        elif channel is Channel.ATTENDANCE:
            result = await admin.publish_attendance(payload)
        else:
            target = {"organization_id": payload["organization_id"]}
            result = await admin.broadcast("system:notification", payload, target=target)
    except IntradayError as error:
        entry.failed = f"{type(error).__name__}: {error}"
        return
    entry.message_id = result.message_id


async def _wait_healthy(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2.0) as http:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(url.rstrip("/") + "/api/ws/health")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise TimeoutError(f"{url} not healthy within {timeout:g} s")


async def _restart(command: str, url: str) -> None:
    process = await asyncio.create_subprocess_shell(
        command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL
    )
    code = await process.wait()
    if code != 0:
        raise RuntimeError(f"the restart command exited {code}")
    await _wait_healthy(url)


async def _apply_faults(
    config: VerifyConfig,
    proxy: TcpProxy,
    stop: asyncio.Event,
    counted: list[int],
    back: Callable[[], bool],
) -> None:
    """Apply the fault on schedule until ``stop``; ``back``: every subscriber is resubscribed."""
    if config.fault == "none":
        return
    loop = asyncio.get_running_loop()
    begin = loop.time()
    every = config.fault_every
    if config.fault == "restart":
        every = config.duration / (config.restarts + 1)
    for i in range(1, 10**6):
        # Restarts are due at fixed points of the run (i / (restarts + 1) of it), not an
        # interval after the previous one ended: a slow restart must not crowd the last
        # ones out of the run (40 s with 3-4 s restarts fitted 2 or 3 of 5).
        due = begin + i * every if config.fault == "restart" else loop.time() + every
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(max(due, loop.time())):
                await stop.wait()
                return
        if config.fault == "restart":
            if counted[0] >= config.restarts:
                return
            assert config.restart_command is not None
            await _restart(config.restart_command, config.url)
            # The next restart only once the subscribers are back: two restarts within one
            # outage of theirs would count as two while they saw one.
            give_up = loop.time() + _BACK_WITHIN
            while not (back() or stop.is_set() or loop.time() > give_up):  # noqa: ASYNC110
                await asyncio.sleep(0.1)  # polled: no one event says several clients are back
        else:
            if config.fault == "drop":
                proxy.refuse()
                await proxy.cut()
            elif config.fault == "refuse":
                proxy.refuse(status=503)
                await proxy.cut()
            elif config.fault == "blackhole":
                proxy.blackhole()
            else:
                proxy.delay(config.delay)
            await asyncio.sleep(config.fault_seconds)
            proxy.restore()
        counted[0] += 1


def _proxy_target(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname or "127.0.0.1", port


async def run_verify(
    config: VerifyConfig, progress: Callable[[str], None] | None = None
) -> VerifyResult:
    """Run once and tally; see the module's docstring.

    Raises:
        ValueError: a ``restart`` run without a ``restart_command``.
        IntradayError: the subscribers could not connect and subscribe at the start.
    """
    if config.fault == "restart" and not config.restart_command:
        raise ValueError("fault 'restart' needs a restart_command")
    run_id = secrets.token_hex(4)
    org = config.organization_id or f"verify-{run_id}"
    ledger = Ledger(run_id, org)
    streams = [stream_name(c, org) for c in config.channels]
    host, port = _proxy_target(config.url)
    started = time.monotonic()
    notes: list[str] = []

    def say(text: str) -> None:
        if progress is not None:
            progress(text)

    async with (
        TcpProxy(host, port) as proxy,
        # Patient: a publish during a restart waits for the server (about 12 s of retries).
        AdminClient(
            config.url, token=config.admin_token, timeout=5.0, publish_attempts=10
        ) as admin,
    ):
        subscribers: list[SdkSubscriber | RawSubscriber] = []
        for i in range(config.sdk_clients):
            client_config = ClientConfig(
                url=proxy.url,
                path=config.path,
                user_id=f"verify-sdk-{i}",
                organization_id=org,
                token=config.token,
                reconnection_attempts=None,
                reconnection_delay=0.1,
                reconnection_delay_max=1.0,
            )
            log = ledger.subscriber(f"sdk-{i}", "sdk")
            subscribers.append(SdkSubscriber(log, client_config, config.channels, run_id))
        for i in range(config.raw_clients):
            auth: dict[str, Any] = {"user_id": f"verify-raw-{i}", "organization_id": org}
            if config.token is not None:
                auth["token"] = config.token
            log = ledger.subscriber(f"raw-{i}", "raw")
            subscribers.append(
                RawSubscriber(log, proxy.url, config.path, auth, config.channels, run_id)
            )
        try:
            await asyncio.gather(*(s.start() for s in subscribers))
            say(f"{len(subscribers)} subscribers ready; publishing for {config.duration:g} s")
            stop = asyncio.Event()
            counted = [0]
            faults = asyncio.create_task(
                _apply_faults(
                    config, proxy, stop, counted, lambda: all(s.ready for s in subscribers)
                )
            )
            loop = asyncio.get_running_loop()
            begin = loop.time()
            total = max(1, int(config.duration * config.rate))
            for n in range(1, total + 1):
                due = begin + (n - 1) / config.rate
                if due > loop.time():
                    await asyncio.sleep(due - loop.time())
                channel = config.channels[n % len(config.channels)]
                entry = ledger.publishing(n, stream_name(channel, org))
                await _publish_one(admin, channel, _payload(channel, org, run_id, n), entry)
            stop.set()
            try:
                await faults
            finally:
                proxy.restore()
            say(f"published {total}; {counted[0]} faults; waiting for deliveries")
            if not await _settle(ledger, subscribers, config.settle):
                away = sum(1 for s in subscribers if not s.ready)
                notes.append(
                    f"{away} subscribers not back {config.settle + _BACK_WITHIN:g} s after the"
                    " last publish: what they would have been told of counts as lost"
                )
        finally:
            await asyncio.gather(*(s.close() for s in subscribers), return_exceptions=True)
    if config.fault == "restart" and counted[0] < config.restarts:
        notes.append(
            f"only {counted[0]} of {config.restarts} restarts fitted in the run (restarts that"
            " take longer than duration / (restarts + 1) need a longer --duration)"
        )
    failed = [p for p in ledger.published.values() if p.failed]
    if failed:
        notes.append(f"{len(failed)} publishes failed for good, first: {failed[0].failed}")
    return VerifyResult(
        config, ledger, tally(ledger, streams), counted[0], time.monotonic() - started, notes
    )


_BACK_WITHIN = 30.0
"""Seconds past ``settle`` a run waits for subscribers still reconnecting when it ends."""


async def _settle(
    ledger: Ledger, subscribers: Sequence[SdkSubscriber | RawSubscriber], quiet: float
) -> bool:
    """Wait until every subscriber has every published message, or nothing came for ``quiet`` s
    with every subscriber back (connected and resubscribed); ``False``: some were not back
    within ``quiet`` + 30 s.

    A subscriber still reconnecting when the run ends has not yet been told of what it
    missed (its gap comes with its resume): tallied then, that would count as lost in
    silence what it is about to report.
    """
    wanted = {p.n for p in ledger.published.values() if p.failed is None}
    loop = asyncio.get_running_loop()
    last_count = -1
    last_change = loop.time()
    give_up = last_change + quiet + _BACK_WITHIN
    back = False
    while True:
        now = loop.time()
        count = sum(len(log.deliveries) for log in ledger.subscribers)
        if count != last_count:
            last_count, last_change = count, now
        if not back and all(s.ready for s in subscribers):
            back, last_change = True, now  # its gap reports may follow its resume
        elif back and not all(s.ready for s in subscribers):
            back = False
        if all(wanted <= {d.n for d in log.deliveries} for log in ledger.subscribers):
            # Everything is there: a moment more shows a late duplicate or phantom.
            await asyncio.sleep(min(1.0, quiet))
            return True
        if now - last_change >= quiet and (back or now >= give_up):
            return back
        await asyncio.sleep(0.1)
