"""A plain live view of the event stream, for ``make demo``.

A real Socket.IO client (python-socketio) that authenticates, subscribes to
every channel of one organization and prints one line per event as it
arrives. The SDK's dashboard replaces it once the SDK exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections import Counter
from typing import Any, TextIO

import socketio

__all__ = ["watch"]


def describe(event: str, envelope: dict[str, Any]) -> str:
    """One readable line for an event envelope."""
    data = envelope.get("data", {}) if isinstance(envelope, dict) else {}
    where = "/".join(
        str(v)
        for v in (data.get("organization_id"), data.get("department_id"), data.get("queue_name"))
        if v
    )
    details: list[str] = []
    if (util := data.get("utilization")) and isinstance(util, dict):
        details.append(f"util={util.get('current_utilization', 0):.1f}%")
    if (level := data.get("service_level")) and isinstance(level, dict):
        details.append(f"sl={level.get('current', 0):.1f}%")
    if "health_score" in data:
        details.append(f"health={data['health_score']:.0f}")
    for key in ("total_items", "present", "severity", "rule_name", "employee_id", "message"):
        if key in data:
            details.append(f"{key}={data[key]}")
    stamp = str(envelope.get("timestamp", ""))[11:23]
    return f"{stamp} {event:<22} {where:<28} {' '.join(details)}"


async def watch(
    url: str,
    organization_id: str,
    *,
    path: str = "/ws",
    duration: float | None = None,
    out: TextIO = sys.stdout,
) -> Counter[str]:
    """Print the organization's events until ``duration`` seconds pass; returns counts by event."""
    counts: Counter[str] = Counter()
    client = socketio.AsyncClient(reconnection=True, handle_sigint=False)

    async def on_any(event: str, *args: Any) -> None:
        envelope = args[0] if args else {}
        counts[event] += 1
        print(describe(event, envelope), file=out, flush=True)

    client.on("*", on_any)
    await client.connect(
        url,
        socketio_path=path.strip("/"),
        transports=["websocket"],
        auth={"user_id": "demo-viewer", "organization_id": organization_id},
        wait_timeout=10,
    )
    ack = await client.call("subscribe", {"channels": ["all"]}, timeout=10)
    print(f"subscribed: {', '.join(ack.get('subscriptions', []))}", file=out, flush=True)
    try:
        if duration is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(duration)
    finally:
        with contextlib.suppress(Exception):
            await client.disconnect()
    total = sum(counts.values())
    print(f"received {total} events: {dict(counts)}", file=out, flush=True)
    return counts
