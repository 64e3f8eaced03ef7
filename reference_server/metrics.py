"""Prometheus metrics: what ``GET /metrics`` exposes, and the calls that feed it.

prometheus-client renders the exposition; this module only decides what is
measured. Two kinds of figure:

* **read at scrape time** from what the server already keeps (the registry
  of connections and rooms, :class:`~reference_server.stats.ServerStats`):
  connections by organization and transport, subscriptions, rooms, messages
  published by event, errors by code, uptime. They cost nothing between
  scrapes, which is why they are not counted a second time on the hot path.
* **recorded as they happen**, through the ``record_*`` methods that the
  parts call at their existing seams: authentications by result, deliveries
  by event, fan-out size, hand-off and ack-round-trip histograms, rate-limit
  refusals, disconnects by reason, replays and snapshots.

Every server (and every test server in one process) has its own
:class:`prometheus_client.CollectorRegistry`, so that figures never mix. It
also holds prometheus-client's standard ``process_*`` (CPU, resident memory,
open file descriptors) and ``python_*`` (garbage collections, version)
collectors, which every Prometheus user expects of a Python process. The
``_created`` series of counters and histograms (about a fifth of a scrape, of
use to no dashboard) are switched off.

An operator who sends a wrong admin token (a Prometheus job scraping
``/metrics`` without it, a mistyped login in the admin UI) is counted in
``intraday_admin_auth_failures_total``, never among the errors answered to
clients (``intraday_errors_total``): those are what "Errors by code" shows.
With ``metrics_enabled = false`` the ``record_*`` methods return at once;
that is the "off" side of ``bench/fanout_transport.py --variants
reference,reference-nometrics``.

Seams left for other parts of the server:

* the replay/snapshot store calls :meth:`ServerMetrics.record_replay`,
  :meth:`ServerMetrics.record_snapshot` and gives its size with
  :meth:`ServerMetrics.set_store_size_source` (read at scrape time);
* cluster mode adds its per-node families with
  :meth:`ServerMetrics.add_collector` (names reserved: ``intraday_node_*``,
  labelled ``node``).
"""

from __future__ import annotations

from collections import Counter as TallyCounter
from collections.abc import Callable, Iterable, Iterator
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
)
from prometheus_client import generate_latest as render
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from client_sdk.protocol import parse_room

from .connections import Registry
from .stats import ServerStats

__all__ = [
    "CONTENT_TYPE",
    "METRIC_NAMES",
    "STANDARD_PREFIXES",
    "AdminRoute",
    "DisconnectReason",
    "ServerMetrics",
]

# Process-wide in prometheus-client (a module flag): no registry of this
# process renders ``_created`` series after this import.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped upstream

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
"""The media type of :meth:`ServerMetrics.exposition` (text format 0.0.4)."""

NO_ORGANIZATION: Final = "none"
"""The ``organization`` label of sockets that have not authenticated yet."""

DisconnectReason = str
"""``client`` (it closed, or its transport was lost) is counted here; the reasons
of the server's own closes (``kicked``, ``rate_limit``, ``auth_timeout``,
``shutdown``, ``too_slow``...) are read from the stats at scrape time."""

# Fan-out sizes: one socket, a queue, a department, an organization, everyone.
_FANOUT_BUCKETS: Final = (0, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
# Seconds: hand-off is sub-millisecond per socket, acks cross a network.
_LATENCY_BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

METRIC_NAMES: Final = frozenset(
    {
        "intraday_up",
        "intraday_uptime_seconds",
        "intraday_connections",
        "intraday_subscriptions",
        "intraday_rooms",
        "intraday_messages_published_total",
        "intraday_errors_total",
        "intraday_admin_auth_failures_total",
        "intraday_authentications_total",
        "intraday_messages_delivered_total",
        "intraday_broadcast_fanout",
        "intraday_broadcast_handoff_seconds",
        "intraday_ack_round_trip_seconds",
        "intraday_rate_limited_total",
        "intraday_disconnects_total",
        "intraday_replays_total",
        "intraday_replayed_messages_total",
        "intraday_snapshots_total",
        "intraday_store_messages",
    }
)
"""Every family this module exports (histograms add ``_bucket``, ``_sum``, ``_count``;
counters are named with their ``_total``). The Grafana dashboard test checks
its expressions against a live scrape, which this list must match."""

STANDARD_PREFIXES: Final = ("process_", "python_")
"""The families of prometheus-client's own process, platform and GC collectors."""

AdminRoute = str
"""Where a wrong admin token was sent: ``metrics``, ``docs`` or ``api`` (the label's values)."""


class _LiveFigures(Collector):
    """The figures read at scrape time from the registry and the stats."""

    def __init__(
        self,
        registry: Registry,
        stats: ServerStats,
        store_size: Callable[[], float | None],
        client_disconnects: Callable[[], int],
    ) -> None:
        self._registry = registry
        self._stats = stats
        self._store_size = store_size
        self._client_disconnects = client_disconnects

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("intraday_up", "1 while the server answers scrapes.", value=1)
        yield GaugeMetricFamily(
            "intraday_uptime_seconds", "Seconds since start.", value=self._stats.uptime_seconds()
        )
        by_org_transport: TallyCounter[tuple[str, str]] = TallyCounter(
            (c.organization_id or NO_ORGANIZATION, c.link.transport) for c in self._registry
        )
        connections = GaugeMetricFamily(
            "intraday_connections",
            "Connected sockets by organization and transport.",
            labels=["organization", "transport"],
        )
        for (org, transport), count in sorted(by_org_transport.items()):
            connections.add_metric([org, transport], count)
        yield connections
        rooms = self._registry.rooms()
        by_type: TallyCounter[str] = TallyCounter()
        subscriptions = 0
        for name, members in rooms.items():
            room = parse_room(name)
            by_type[room.type.value] += 1
            if room.channel is not None:  # organization rooms are not subscriptions
                subscriptions += members
        yield GaugeMetricFamily(
            "intraday_subscriptions", "Subscription room memberships.", value=subscriptions
        )
        room_family = GaugeMetricFamily(
            "intraday_rooms", "Non-empty rooms by type.", labels=["type"]
        )
        for kind in ("org", "dept", "queue"):
            room_family.add_metric([kind], by_type.get(kind, 0))
        yield room_family
        yield _counter(
            "intraday_messages_published",
            "Messages published, by event (whatever their number of recipients).",
            "event",
            self._stats.messages_by_event.items(),
        )
        yield _counter(
            "intraday_errors",
            "Errors answered to clients and API callers, by protocol code.",
            "code",
            self._stats.errors_by_code.items(),
        )
        # The server's closes by reason, and the clients' own.
        reasons = dict(self._stats.disconnects_by_reason)
        reasons["client"] = self._client_disconnects()
        yield _counter(
            "intraday_disconnects", "Sockets gone, by reason.", "reason", reasons.items()
        )
        size = self._store_size()
        if size is not None:
            yield GaugeMetricFamily(
                "intraday_store_messages", "Messages held by the replay store.", value=size
            )


def _counter(
    name: str, documentation: str, label: str, values: Iterable[tuple[str, int]]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=[label])
    for value, count in sorted(values):
        family.add_metric([value], count)
    return family


class ServerMetrics:
    """The Prometheus figures of one server.

    Args:
        registry: the server's connections and rooms (read at scrape time).
        stats: the server's counters (read at scrape time).
        enabled: ``False`` makes every ``record_*`` call return at once.
    """

    def __init__(self, registry: Registry, stats: ServerStats, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.registry = CollectorRegistry(auto_describe=False)
        # The standard collectors, registered on this server's own registry too
        # (they read /proc and the gc module at scrape time; nothing is shared).
        for standard in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(standard)
        self._store_size: Callable[[], float] | None = None
        self._client_gone = 0
        self.registry.register(
            _LiveFigures(registry, stats, self._read_store_size, lambda: self._client_gone)
        )
        r = self.registry
        self._auth = Counter(
            "intraday_authentications",
            "Authentication attempts by result (success, or the refusal's code).",
            ["result"],
            registry=r,
        )
        self._delivered = Counter(
            "intraday_messages_delivered",
            "Deliveries (one message to one socket), by event.",
            ["event"],
            registry=r,
        )
        self._fanout = Histogram(
            "intraday_broadcast_fanout",
            "Recipients per published message.",
            buckets=_FANOUT_BUCKETS,
            registry=r,
        )
        self._handoff = Histogram(
            "intraday_broadcast_handoff_seconds",
            "From the start of delivery (the store append included) until the message is "
            "queued for every recipient's transport (end-to-end latency is the load tool's).",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self._ack = Histogram(
            "intraday_ack_round_trip_seconds",
            "From sending a requires_ack message until the client's ack arrives.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self._admin_refused = Counter(
            "intraday_admin_auth_failures",
            "Requests refused for a missing or wrong admin token, by route "
            "(metrics, docs, api): operators and scrapers, not clients.",
            ["route"],
            registry=r,
        )
        self._rate_limited = Counter(
            "intraday_rate_limited", "Events refused for exceeding the rate limit.", registry=r
        )
        self._replays = Counter(
            "intraday_replays", "Replay requests answered from the store.", registry=r
        )
        self._replayed = Counter(
            "intraday_replayed_messages", "Messages sent again by replays.", registry=r
        )
        self._snapshots = Counter("intraday_snapshots", "Snapshots sent.", registry=r)
        # labels() takes a lock and builds a tuple: keep one child per event.
        self._delivered_by_event: dict[str, Counter] = {}

    # -- recorded as it happens ---------------------------------------------

    def record_auth(self, result: str) -> None:
        """One authentication: ``success`` or the refusal's protocol code."""
        if self.enabled:
            self._auth.labels(result).inc()

    def record_admin_refusal(self, path: str) -> None:
        """One request refused for its admin token (``path``: the URL path it asked for)."""
        if not self.enabled:
            return
        if path == "/metrics":
            route = "metrics"
        elif path.startswith(("/api/ws/docs", "/api/ws/openapi")):
            route = "docs"
        else:
            route = "api"
        self._admin_refused.labels(route).inc()

    def record_delivery(self, event: str, recipients: int, seconds: float) -> None:
        """One published message handed to ``recipients`` sockets in ``seconds``."""
        if not self.enabled:
            return
        child = self._delivered_by_event.get(event)
        if child is None:
            child = self._delivered_by_event[event] = self._delivered.labels(event)
        child.inc(recipients)
        self._fanout.observe(recipients)
        self._handoff.observe(seconds)

    def record_ack(self, seconds: float) -> None:
        """One ``requires_ack`` delivery acknowledged after ``seconds``."""
        if self.enabled:
            self._ack.observe(seconds)

    def record_rate_limited(self) -> None:
        """One event refused with ``RATE_LIMIT_EXCEEDED``."""
        if self.enabled:
            self._rate_limited.inc()

    def record_disconnect(self, reason: DisconnectReason) -> None:
        """One socket gone from the client's side (``client``, see :data:`DisconnectReason`)."""
        if self.enabled:
            self._client_gone += 1

    def record_replay(self, messages: int) -> None:
        """One replay request answered with ``messages`` messages (for the store)."""
        if self.enabled:
            self._replays.inc()
            self._replayed.inc(messages)

    def record_snapshot(self) -> None:
        """One snapshot sent (for the store)."""
        if self.enabled:
            self._snapshots.inc()

    # -- read at scrape time ------------------------------------------------

    def set_store_size_source(self, source: Callable[[], float]) -> None:
        """Have ``intraday_store_messages`` read ``source()`` at every scrape."""
        self._store_size = source

    def set_store_size(self, messages: float) -> None:
        """The store's size as just measured (for stores whose figures are awaited)."""
        self._store_size = lambda: messages

    def _read_store_size(self) -> float | None:
        return self._store_size() if self._store_size is not None else None

    def add_collector(self, collector: Collector) -> None:
        """Export more families (cluster mode's ``intraday_node_*``)."""
        self.registry.register(collector)

    def exposition(self) -> bytes:
        """The text exposition of every family (media type :data:`CONTENT_TYPE`)."""
        return render(self.registry)
