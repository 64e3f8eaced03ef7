"""One load worker process: many real clients, counting what they receive.

Started by :mod:`client_sdk.load._run` as ``python -m client_sdk.load._worker
CONFIG_JSON``. It talks over its standard streams, one JSON object per line:
``{"ready": ...}`` once every client connected (or failed), then
``{"progress": ...}`` every second, and ``{"result": ...}`` after the
orchestrator writes the stop line, ``{"published": {organization: count}}``,
to its standard input: the worker then counts what each client lost itself,
so that no list of sequence numbers crosses the pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from .._client import IntradayClient
from .._messages import Message
from ..config import ClientConfig
from ..protocol import Channel, ConnectionState, Payload
from ._tally import LatencyHistogram, SequenceTally, Timeline

__all__ = ["main"]

CONNECT_CONCURRENCY = 50
"""Handshakes in flight per worker: enough to be quick, few enough not to look like a flood."""


@dataclass
class _Client:
    organization_id: str
    tally: SequenceTally = field(default_factory=SequenceTally)
    reconnects: int = 0
    connect_ms: float | None = None


def _emit(line: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(line, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def _run(config: dict[str, Any]) -> None:
    run_id: str = config["run_id"]
    latency = LatencyHistogram()
    timeline = Timeline()
    delivered = 0
    clients: list[tuple[IntradayClient, _Client]] = []
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    def listener(record: _Client) -> Any:
        def on_message(message: Message[Payload]) -> None:
            nonlocal delivered
            extra = message.payload.model_extra or {}
            if extra.get("load_run") != run_id:
                return  # another run's, or the server's own traffic
            now = time.time()
            ms = max(0.0, (now - float(extra["load_sent"])) * 1000)
            record.tally.add(int(extra["load_seq"]))
            latency.add(ms)
            timeline.add(int(now), ms)
            delivered += 1

        return on_message

    async def start(index: int, org: str) -> None:
        client = IntradayClient(
            ClientConfig(
                url=config["url"],
                path=config["path"],
                user_id=f"load-{config['worker']}-{index}",
                organization_id=org,
                token=config.get("token"),
                reconnection_attempts=None,
                dedupe_window=0,  # duplicates are what we count, not what we hide
                transports=("websocket",),
            )
        )
        record = _Client(org)
        client.add_listener("kpi:update", listener(record))

        def on_state(state: ConnectionState) -> None:
            if state is ConnectionState.RECONNECTING:
                record.reconnects += 1

        client.state_changes.subscribe(on_state)
        clients.append((client, record))
        async with gate:
            began = time.monotonic()
            try:
                await client.connect()
                await client.subscribe([Channel.KPI])
            except Exception as exc:  # reported as a connect failure, the run goes on
                record.connect_ms = None
                sys.stderr.write(f"load worker: client {index}: {exc}\n")
                return
            record.connect_ms = (time.monotonic() - began) * 1000

    orgs: list[str] = config["organizations"]
    await asyncio.gather(*(start(i, org) for i, org in enumerate(orgs)))
    ok = [r for _, r in clients if r.connect_ms is not None]
    per_org: dict[str, int] = {}
    for record in ok:
        per_org[record.organization_id] = per_org.get(record.organization_id, 0) + 1
    _emit(
        {
            "ready": {
                "connected": len(ok),
                "failed": len(clients) - len(ok),
                "per_org": per_org,
                "connect_ms": [r.connect_ms for r in ok],
            }
        }
    )
    stop = asyncio.create_task(asyncio.to_thread(sys.stdin.readline))
    while not stop.done():
        await asyncio.wait({stop}, timeout=1.0)
        reconnects = sum(r.reconnects for _, r in clients)
        _emit({"progress": {"delivered": delivered, "reconnects": reconnects}})
    try:
        published: dict[str, int] = json.loads(stop.result() or "{}").get("published", {})
    except ValueError:
        published = {}
    _emit(
        {
            "result": {
                "clients": [
                    {
                        "org": r.organization_id,
                        "lost": r.tally.lost(published.get(r.organization_id, 0)),
                        "duplicated": r.tally.duplicated,
                        "out_of_order": r.tally.out_of_order,
                        "reconnects": r.reconnects,
                    }
                    for r in ok
                ],
                "latency": latency.to_wire(),
                "timeline": timeline.to_wire(),
            }
        }
    )
    with contextlib.suppress(Exception):
        await asyncio.wait_for(asyncio.gather(*(c.close() for c, _ in clients)), 15)


def main(argv: list[str] | None = None) -> int:
    """Run one worker with the JSON configuration given as the only argument."""
    args = sys.argv[1:] if argv is None else argv
    asyncio.run(_run(json.loads(args[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
