"""A KPI publisher: KPIs computed elsewhere, pushed to every subscribed client.

Your workforce-management system computes the KPIs (here: rows of a CSV
file, or the small sample below); this program turns each row into a typed
:class:`~client_sdk.protocol.KpiPayload` and publishes it through the
server's management API with :class:`~client_sdk.AdminClient`. The server
delivers each one as ``kpi:update`` to the clients subscribed to its
organization, department or queue.

Rows are validated before anything is sent, so a bad file publishes nothing.

Publishing is safe to retry. ``AdminClient`` sends every publish with an
``Idempotency-Key`` and, when the answer times out or is a 503 (the server's
store or broker briefly away), sends it again with the same key: the server
delivers it once. Here the key is the row's own identity (organization,
queue, interval), so running the program again on the same file within the
server's window (5 minutes by default) publishes nothing twice either: the
server answers each row with the message it already sent.

Run it against a server started with an admin token::

    intraday-live-server serve --admin-token s3cret
    python examples/publisher.py --url http://127.0.0.1:5000 --token s3cret --org acme
    python examples/publisher.py --token s3cret --csv my_kpis.csv --interval 1

Every flag also reads an environment variable: ``INTRADAY_URL``,
``INTRADAY_ADMIN_TOKEN``, ``INTRADAY_ORG``. The program ends when every row is
published.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError

from client_sdk import AdminClient, IntradayError
from client_sdk.protocol import KpiPayload, ServiceLevel, Utilization

SAMPLE_CSV = """\
timestamp,department_id,queue_name,utilization,service_level,health_score
2026-11-25T10:30:00Z,customer_care,support,82.5,91.0,88
2026-11-25T10:30:00Z,customer_care,billing,64.0,97.5,95
2026-11-25T10:45:00Z,customer_care,support,93.0,78.0,61
2026-11-25T10:45:00Z,customer_care,billing,70.5,95.0,92
"""
"""What ``--csv`` replaces: one row per queue and interval."""


@dataclass(frozen=True)
class PublisherOptions:
    """The publisher's settings (see :func:`parse_args`)."""

    url: str
    token: str | None
    org: str
    csv_file: Path | None
    interval: float


def parse_args(argv: Sequence[str] | None = None) -> PublisherOptions:
    """Read the options from ``argv`` (the command line by default) and the environment."""
    env = os.environ.get
    parser = argparse.ArgumentParser(description="Publish KPIs through the management API.")
    parser.add_argument("--url", default=env("INTRADAY_URL", "http://127.0.0.1:5000"))
    parser.add_argument("--token", default=env("INTRADAY_ADMIN_TOKEN"), help="admin token")
    parser.add_argument("--org", default=env("INTRADAY_ORG", "acme"), help="organization")
    parser.add_argument("--csv", type=Path, help="a CSV file like SAMPLE_CSV (default: it)")
    parser.add_argument(
        "--interval", type=float, default=0.0, help="seconds between two rows (replay a feed)"
    )
    args = parser.parse_args(argv)
    return PublisherOptions(args.url, args.token, args.org, args.csv, args.interval)


def kpis_from_csv(text: str, organization_id: str) -> Iterator[KpiPayload]:
    """One validated payload per CSV row.

    Raises:
        ValueError: a row is not a valid KPI (the message names its line).
    """
    for line, row in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        try:
            yield KpiPayload(
                organization_id=organization_id,
                department_id=row["department_id"] or None,
                queue_name=row["queue_name"],
                timestamp=datetime.fromisoformat(row["timestamp"]),
                utilization=Utilization(current_utilization=float(row["utilization"])),
                service_level=ServiceLevel(current=float(row["service_level"])),
                health_score=float(row["health_score"]),
            )
        except (KeyError, ValueError, ValidationError) as exc:
            # (pydantic's ValidationError is a ValueError; named for the reader.)
            raise ValueError(f"line {line}: not a valid KPI row: {exc}") from None


def row_key(kpi: KpiPayload) -> str:
    """The row's identity as an ``Idempotency-Key``: the same row is the same message."""
    return f"kpi.{kpi.organization_id}.{kpi.queue_name}.{kpi.timestamp:%Y%m%dT%H%M%S}"


async def publish(options: PublisherOptions, kpis: Sequence[KpiPayload]) -> int:
    """Publish ``kpis`` in order; return how many deliveries the server made in all."""
    deliveries = 0
    async with AdminClient(options.url, token=options.token) as admin:
        for number, kpi in enumerate(kpis):
            if number and options.interval:
                await asyncio.sleep(options.interval)  # pacing a replayed feed
            # kpi:update to its org, dept and queue; once, however often it is retried
            result = await admin.publish_kpi(kpi, idempotency_key=row_key(kpi))
            deliveries += result.recipients
            print(
                f"kpi:update {kpi.queue_name} {kpi.timestamp:%H:%M} "
                f"health {kpi.health_score:g} -> {result.recipients} client(s) "
                f"[{result.message_id}]"
            )
    return deliveries


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: 0 when every row was published, 1 on a server error, 2 on bad data."""
    options = parse_args(argv)
    text = options.csv_file.read_text(encoding="utf-8") if options.csv_file else SAMPLE_CSV
    try:
        kpis = list(kpis_from_csv(text, options.org))  # validate every row first
    except ValueError as exc:
        print(f"publisher: {exc}", file=sys.stderr)
        return 2
    try:
        deliveries = asyncio.run(publish(options, kpis))
    except IntradayError as exc:  # refused token, unreachable server, invalid payload...
        print(f"publisher: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"published {len(kpis)} KPIs ({deliveries} deliveries)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
