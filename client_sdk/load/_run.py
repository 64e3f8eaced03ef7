"""One load run: workers connect, the publisher paces numbered messages, the figures merge.

The run is bounded: connecting has ``connect_timeout``, publishing lasts
``duration``, the drain ``drain`` seconds at most, and workers that do not
answer the stop line in time are killed. Every message carries the run's id,
its organization's sequence number and the wall-clock time it was sent, so
the workers can tell loss, duplicates, order and latency (same host: one
clock; across hosts latency includes the clocks' offset).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..admin import AdminClient
from ..exceptions import IntradayError
from ..protocol import ServerEvent
from ._server_probe import ServerProbe
from ._tally import LatencyHistogram, Timeline

__all__ = ["LoadConfig", "Progress", "run_load"]


@dataclass(frozen=True, slots=True)
class LoadConfig:
    """What a load run does (the ``intraday-live load`` flags)."""

    url: str
    clients: int = 10
    orgs: int = 1
    rate: float = 10.0
    """Messages published per second, over all organizations (round robin)."""
    duration: float = 10.0
    size: int = 0
    """Extra payload bytes per message (padding)."""
    processes: int = 1
    path: str = "/ws"
    admin_token: str | None = None
    token: str | None = None
    """A JWT for the clients (servers in jwt mode)."""
    org_prefix: str = "load"
    drain: float = 5.0
    connect_timeout: float | None = None
    """Default: 30 s plus 50 ms per client."""

    def organizations(self) -> list[str]:
        return [f"{self.org_prefix}-{k}" for k in range(self.orgs)]


@dataclass
class Progress:
    """What the live display shows, updated about once a second."""

    phase: str = "connecting"
    elapsed: float = 0.0
    connected: int = 0
    published: int = 0
    delivered: int = 0
    reconnects: int = 0
    server_cpu_percent: float | None = None
    server_rss_mib: float | None = None


@dataclass
class _Worker:
    process: asyncio.subprocess.Process
    ready: asyncio.Future[dict[str, Any]]
    result: asyncio.Future[dict[str, Any]]
    progress: dict[str, int] = field(default_factory=lambda: {"delivered": 0, "reconnects": 0})


async def _read(worker: _Worker) -> None:
    assert worker.process.stdout is not None
    async for raw in worker.process.stdout:
        with contextlib.suppress(ValueError):
            line = json.loads(raw)
            if "ready" in line and not worker.ready.done():
                worker.ready.set_result(line["ready"])
            elif "progress" in line:
                worker.progress = line["progress"]
            elif "result" in line and not worker.result.done():
                worker.result.set_result(line["result"])
    for future in (worker.ready, worker.result):
        if not future.done():
            future.set_exception(RuntimeError("a load worker exited early"))


async def _spawn(config: LoadConfig, run_id: str, index: int, orgs: list[str]) -> _Worker:
    spec = {
        "run_id": run_id,
        "worker": index,
        "url": config.url,
        "path": config.path,
        "token": config.token,
        "organizations": orgs,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "client_sdk.load._worker",
        json.dumps(spec),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        limit=64 * 1024 * 1024,  # the result line holds a histogram and a timeline
    )
    loop = asyncio.get_running_loop()
    return _Worker(process, loop.create_future(), loop.create_future())


def _payload(org: str, run_id: str, seq: int, padding: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    body: dict[str, Any] = {
        "organization_id": org,
        "timestamp": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "health_score": 50,
        "load_run": run_id,
        "load_seq": seq,
        "load_sent": time.time(),
    }
    if padding:
        body["load_padding"] = padding
    return body


async def _publish(
    config: LoadConfig, run_id: str, progress: Progress, published: dict[str, int]
) -> int:
    """Publish for ``duration`` at ``rate``; the number of failed publishes.

    Message ``i`` goes to organization ``i % orgs`` at ``i / rate`` seconds.
    Each organization has its own loop, so a request waits only for that
    organization's previous one: its sequence stays in order at the server,
    and a slow answer does not hold back the other organizations.
    """
    orgs = config.organizations()
    padding = "x" * config.size
    failures = 0
    total = int(config.rate * config.duration)
    async with AdminClient(config.url, token=config.admin_token) as admin:
        start = time.monotonic()

        async def publish_to(first: int, org: str) -> None:
            nonlocal failures
            for i in range(first, total, len(orgs)):
                delay = start + i / config.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                try:
                    await admin.broadcast(
                        ServerEvent.KPI_UPDATE, _payload(org, run_id, published[org], padding)
                    )
                except IntradayError:
                    failures += 1
                    continue
                published[org] += 1
                progress.published += 1

        await asyncio.gather(*(publish_to(k, org) for k, org in enumerate(orgs)))
    return failures


async def _stop(workers: list[_Worker], published: dict[str, int], timeout: float) -> None:
    line = (json.dumps({"published": published}) + "\n").encode()
    for worker in workers:
        if worker.process.stdin is not None:
            with contextlib.suppress(Exception):
                worker.process.stdin.write(line)
                await worker.process.stdin.drain()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(
            asyncio.gather(*(w.process.wait() for w in workers), return_exceptions=True), timeout
        )
    for worker in workers:
        if worker.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                worker.process.kill()
            await worker.process.wait()


async def run_load(
    config: LoadConfig, on_progress: Callable[[Progress], None] | None = None
) -> dict[str, Any]:
    """Run one load test; the figures as the JSON report has them (see :mod:`.report`)."""
    run_id = uuid.uuid4().hex[:12]
    orgs = config.organizations()
    assignment = [orgs[i % len(orgs)] for i in range(config.clients)]
    shares = [assignment[p :: config.processes] for p in range(config.processes)]
    progress = Progress()
    probe = ServerProbe.for_url(config.url)
    began = time.monotonic()
    workers = [await _spawn(config, run_id, p, s) for p, s in enumerate(shares) if s]
    readers = [asyncio.create_task(_read(w)) for w in workers]
    published = dict.fromkeys(orgs, 0)

    async def tick() -> None:
        while True:
            progress.elapsed = time.monotonic() - began
            progress.delivered = sum(w.progress["delivered"] for w in workers)
            progress.reconnects = sum(w.progress["reconnects"] for w in workers)
            sample = probe.sample(progress.elapsed) if probe is not None else None
            if sample is not None:
                progress.server_cpu_percent, progress.server_rss_mib = sample[1], sample[2]
            if on_progress is not None:
                on_progress(progress)
            await asyncio.sleep(1.0)

    ticker = asyncio.create_task(tick())
    try:
        limit = config.connect_timeout or 30 + 0.05 * config.clients
        ready = await asyncio.wait_for(asyncio.gather(*(w.ready for w in workers)), limit)
        progress.connected = sum(r["connected"] for r in ready)
        per_org: dict[str, int] = {}
        for r in ready:
            for org, n in r["per_org"].items():
                per_org[org] = per_org.get(org, 0) + n
        progress.phase = "publishing"
        publish_began = time.monotonic()
        failures = await _publish(config, run_id, progress, published)
        publish_s = time.monotonic() - publish_began
        progress.phase = "draining"
        expected = sum(published[org] * per_org.get(org, 0) for org in orgs)
        deadline = time.monotonic() + config.drain
        while time.monotonic() < deadline:
            if sum(w.progress["delivered"] for w in workers) >= expected:
                break
            await asyncio.sleep(0.2)
        progress.phase = "stopping"
        await _stop(workers, published, timeout=15)
        results = [await asyncio.wait_for(w.result, 5) for w in workers]
    finally:
        ticker.cancel()
        for task in readers:
            task.cancel()
        await _stop(workers, published, timeout=1)
    return _figures(config, ready, results, published, failures, publish_s, expected, probe)


def _figures(
    config: LoadConfig,
    ready: list[dict[str, Any]],
    results: list[dict[str, Any]],
    published: dict[str, int],
    publish_failures: int,
    publish_s: float,
    expected: int,
    probe: ServerProbe | None,
) -> dict[str, Any]:
    latency = LatencyHistogram()
    timeline = Timeline()
    clients: list[dict[str, Any]] = []
    for result in results:
        latency.merge(LatencyHistogram.from_wire(result["latency"]))
        timeline.merge(Timeline.from_wire(result["timeline"]))
        clients.extend(result["clients"])
    connect_ms = [ms for r in ready for ms in r["connect_ms"]]
    start = min(timeline.seconds, default=0)
    series = [
        {"second": s - start, "deliveries": int(c), "mean_ms": t / c if c else 0.0, "max_ms": m}
        for s, (c, t, m) in sorted(timeline.seconds.items())
    ]

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 3)

    return {
        "delivered": latency.count,
        "expected": expected,
        "lost": sum(c["lost"] for c in clients),
        "duplicated": sum(c["duplicated"] for c in clients),
        "out_of_order": sum(c["out_of_order"] for c in clients),
        "reconnects": sum(c["reconnects"] for c in clients),
        "latency_ms": {
            "p50": rounded(latency.percentile(0.50)),
            "p90": rounded(latency.percentile(0.90)),
            "p99": rounded(latency.percentile(0.99)),
            "max": rounded(latency.max_ms if latency.count else None),
        },
        "config": asdict(config) | {"admin_token": None, "token": None},
        "connect": {
            "connected": sum(r["connected"] for r in ready),
            "failed": sum(r["failed"] for r in ready),
            "p50_ms": rounded(statistics.median(connect_ms)) if connect_ms else None,
            "max_ms": rounded(max(connect_ms, default=0.0)) if connect_ms else None,
        },
        "published": sum(published.values()),
        "publish_failures": publish_failures,
        "publish_rate": round(sum(published.values()) / publish_s, 2) if publish_s else None,
        "deliveries_per_second": round(latency.count / publish_s, 1) if publish_s else None,
        "per_client": {
            "lost_max": max((c["lost"] for c in clients), default=0),
            "duplicated_max": max((c["duplicated"] for c in clients), default=0),
            "out_of_order_max": max((c["out_of_order"] for c in clients), default=0),
            "reconnects_max": max((c["reconnects"] for c in clients), default=0),
        },
        "server": probe.summary() if probe is not None else None,
        "timeline": series,
    }
