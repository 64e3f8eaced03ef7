"""A numbered sequence of KPI updates and alerts, and a client that records what it handles.

Each message carries its number ``n`` as an extra payload field (unknown
fields are kept, section 5), so a test can tell lost, doubled and reordered
messages apart whatever happened to the connection in between.
"""

from __future__ import annotations

import asyncio
from typing import Any

from client_sdk import IntradayClient, Message
from client_sdk.admin import AdminClient
from client_sdk.gaps import Gap
from client_sdk.protocol import AlertPayload, KpiPayload, Payload

ORG = "org_a"
TIMESTAMP = "2026-11-25T10:30:00Z"


def number(message: Message[Payload]) -> int:
    """The ``n`` a message of the sequence carries."""
    extra = message.payload.model_extra or {}
    value = extra["n"]
    assert isinstance(value, int)
    return value


async def publish(admin: AdminClient, n: int) -> None:
    """Publish message ``n``: even ones are KPI updates, odd ones alerts."""
    if n % 2:
        await admin.publish_alert(
            {
                "organization_id": ORG,
                "queue_name": "support",
                "timestamp": TIMESTAMP,
                "alert_id": f"alert-{n}",
                "rule_name": "sequence",
                "severity": "high",
                "n": n,
            }
        )
    else:
        await admin.publish_kpi(
            {"organization_id": ORG, "queue_name": "support", "timestamp": TIMESTAMP, "n": n}
        )


class Handled:
    """What a client's handlers saw: numbers in order, replayed ones, gaps."""

    def __init__(self, client: IntradayClient) -> None:
        self.numbers: list[int] = []
        self.replayed: list[int] = []
        self.gaps: list[Gap] = []
        self.reconnects = 0
        self._changed = asyncio.Event()
        client.on(
            on_kpi_update=self._kpi,
            on_alert_triggered=self._alert,
            on_gap=self._gap,
            on_reconnect=self._reconnected,
        )

    def _reconnected(self) -> None:
        self.reconnects += 1
        self._changed.set()

    def _record(self, message: Message[Any]) -> None:
        self.numbers.append(number(message))
        if message.replayed:
            self.replayed.append(number(message))
        self._changed.set()

    def _kpi(self, message: Message[KpiPayload]) -> None:
        self._record(message)

    def _alert(self, message: Message[AlertPayload]) -> None:
        self._record(message)

    def _gap(self, gap: Gap) -> None:
        self.gaps.append(gap)
        self._changed.set()

    def assert_exactly(self, expected: range) -> None:
        """Every number of ``expected`` once, each stream's (KPIs, alerts) in order.

        Order is a promise per stream (section 6: ``seq`` order); a replay of
        two streams sends one stream's messages, then the other's.
        """
        assert sorted(self.numbers) == list(expected), "lost or doubled"
        for parity in (0, 1):
            stream = [n for n in self.numbers if n % 2 == parity]
            assert stream == sorted(stream), f"reordered: {stream}"

    async def until(self, count: int, timeout: float = 20.0) -> None:
        """Wait until ``count`` messages were handled."""
        async with asyncio.timeout(timeout):
            while len(self.numbers) < count:
                self._changed.clear()
                await self._changed.wait()

    async def until_reconnects(self, count: int, timeout: float = 20.0) -> None:
        """Wait until the client reconnected ``count`` times."""
        async with asyncio.timeout(timeout):
            while self.reconnects < count:
                self._changed.clear()
                await self._changed.wait()

    async def until_gaps(self, count: int, timeout: float = 20.0) -> None:
        """Wait until ``count`` gaps were reported."""
        async with asyncio.timeout(timeout):
            while len(self.gaps) < count:
                self._changed.clear()
                await self._changed.wait()
