"""``GET /metrics``: guarded like the API, and its figures follow what real clients do.

The Grafana dashboard in ``docs/grafana`` is checked against a live scrape:
every metric one of its expressions names must be one the server exports.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from reference_server.app import ReferenceServer
from reference_server.metrics import METRIC_NAMES, STANDARD_PREFIXES

from ..conftest import WAIT, ServerFactory, SioClient, eventually, kpi

DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana" / "intraday-live.json"
TOKEN = "metrics-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def scrape(server: ReferenceServer, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
        return await http.get("/metrics", headers=headers or AUTH)


async def samples(server: ReferenceServer) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape, keyed by name and labels."""
    response = await scrape(server)
    assert response.status_code == 200, response.text
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_need_the_admin_token_when_one_is_set(make_server: ServerFactory) -> None:
    server = await make_server(admin_token=TOKEN)
    refused = await scrape(server, {"Authorization": "Bearer wrong"})
    assert refused.status_code == 401
    allowed = await scrape(server)
    assert allowed.status_code == 200
    assert allowed.headers["content-type"].startswith("text/plain")
    assert "intraday_up 1.0" in allowed.text


async def test_metrics_can_be_open_to_a_scraper_without_the_token(
    make_server: ServerFactory,
) -> None:
    server = await make_server(admin_token=TOKEN, metrics_require_token=False)
    response = await scrape(server, {})
    assert response.status_code == 200


async def test_metrics_can_be_turned_off(make_server: ServerFactory) -> None:
    server = await make_server(metrics_enabled=False)
    response = await scrape(server)
    assert response.status_code == 404


async def test_the_figures_follow_connections_deliveries_errors_and_disconnects(
    make_server: ServerFactory, make_client: Callable[[ReferenceServer], SioClient]
) -> None:
    server = await make_server(admin_token=TOKEN)
    client = make_client(server)
    await client.connect()
    assert (await client.authenticate("ana", "org_a"))["success"] is True
    assert (await client.call("subscribe", {"channels": ["kpi"]}))["success"] is True
    refused = await client.call("subscribe", {"channels": ["no-such-channel"]})
    assert refused["success"] is False
    async with httpx.AsyncClient(base_url=server.url, headers=AUTH, timeout=WAIT) as api:
        published = await api.post("/api/ws/broadcast/kpi", json=kpi())
        assert published.json()["recipients"] == 1
        await client.wait_for("kpi:update")
        found = await samples(server)
        assert (
            value(found, "intraday_connections", organization="org_a", transport="websocket") == 1
        )
        assert value(found, "intraday_authentications_total", result="success") == 1
        assert value(found, "intraday_subscriptions") == 1
        assert value(found, "intraday_rooms", type="org") == 2  # org:org_a, kpi:org:org_a
        assert value(found, "intraday_messages_published_total", event="kpi:update") == 1
        assert value(found, "intraday_messages_delivered_total", event="kpi:update") == 1
        assert value(found, "intraday_broadcast_fanout_sum") == 1
        assert value(found, "intraday_broadcast_handoff_seconds_count") == 1
        assert value(found, "intraday_errors_total", code="INVALID_MESSAGE") == 1
        sid = (await api.get("/api/ws/connections")).json()["connections"][0]["socket_id"]
        await api.delete(f"/api/ws/connections/{sid}")
    await client.disconnected.wait()

    async def counted() -> bool:
        found = await samples(server)
        return value(found, "intraday_disconnects_total", reason="kicked") == 1

    await eventually(counted)
    found = await samples(server)
    assert value(found, "intraday_connections", organization="org_a", transport="websocket") == 0


async def test_acknowledged_deliveries_fill_the_ack_round_trip_histogram(
    make_server: ServerFactory, make_client: Callable[[ReferenceServer], SioClient]
) -> None:
    server = await make_server(admin_token=TOKEN)
    client = make_client(server)
    client.sio.on("kpi:update", lambda data: True)  # python-socketio acks by returning
    await client.connect()
    await client.authenticate("ana", "org_a")
    await client.call("subscribe", {"channels": ["kpi"]})
    async with httpx.AsyncClient(base_url=server.url, headers=AUTH, timeout=WAIT) as api:
        body = {"event": "kpi:update", "data": kpi(), "requires_ack": True}
        assert (await api.post("/api/ws/broadcast", json=body)).status_code == 200

    async def acked() -> bool:
        return value(await samples(server), "intraday_ack_round_trip_seconds_count") == 1

    await eventually(acked)


async def test_the_store_size_is_read_at_scrape_time(make_server: ServerFactory) -> None:
    server = await make_server(admin_token=TOKEN)  # the memory store
    async with httpx.AsyncClient(base_url=server.url, headers=AUTH, timeout=WAIT) as api:
        assert (await api.post("/api/ws/broadcast/kpi", json=kpi())).status_code == 200
    assert value(await samples(server), "intraday_store_messages") == 1


async def test_without_a_store_there_is_no_store_size(make_server: ServerFactory) -> None:
    server = await make_server(admin_token=TOKEN, store="none")
    assert ("intraday_store_messages", frozenset()) not in await samples(server)


async def test_the_replay_seam_feeds_replay_and_snapshot_counts(
    make_server: ServerFactory,
) -> None:
    server = await make_server(admin_token=TOKEN)
    metrics = server.app.metrics
    metrics.record_replay(3)
    metrics.record_snapshot()
    found = await samples(server)
    assert value(found, "intraday_replays_total") == 1
    assert value(found, "intraday_replayed_messages_total") == 3
    assert value(found, "intraday_snapshots_total") == 1


async def test_every_family_the_module_lists_is_exported(make_server: ServerFactory) -> None:
    server = await make_server(admin_token=TOKEN)  # the memory store reports its size
    text = (await scrape(server)).text
    families = {
        f.name for f in text_string_to_metric_families(text) if f.name.startswith("intraday_")
    }
    # The parser names counters without their _total; the module lists them with it.
    listed = {name.removesuffix("_total") for name in METRIC_NAMES}
    assert families == listed


async def test_the_standard_process_families_are_there_and_no_created_series(
    make_server: ServerFactory,
) -> None:
    # Issue 21 item 8: no process_*/python_* families; ~20% of series were _created.
    server = await make_server(admin_token=TOKEN)
    text = (await scrape(server)).text
    names = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    for expected in ("process_resident_memory_bytes", "process_cpu_seconds_total", "python_info"):
        assert expected in names, sorted(names)
    assert any(name.startswith("python_gc_") for name in names)
    assert not [name for name in names if name.endswith("_created")]
    families = {f.name for f in text_string_to_metric_families(text)}
    assert all(name.startswith(("intraday_", *STANDARD_PREFIXES)) for name in families), families


async def test_a_wrong_admin_token_is_not_a_client_error(
    make_server: ServerFactory, make_client: Callable[[ReferenceServer], SioClient]
) -> None:
    # Issue 21 item 8: a Prometheus job without the token added 0.5 errors/s to
    # "Errors by code" as AUTH_FAILED, and an operator's wrong login counted
    # among the admin UI's client errors.
    server = await make_server(admin_token=TOKEN)
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
        for path in ("/metrics", "/metrics", "/api/ws/stats", "/api/ws/openapi.json"):
            assert (await http.get(path)).status_code == 401
    found = await samples(server)
    assert value(found, "intraday_errors_total", code="AUTH_FAILED") == 0
    assert value(found, "intraday_admin_auth_failures_total", route="metrics") == 2
    assert value(found, "intraday_admin_auth_failures_total", route="api") == 1
    assert value(found, "intraday_admin_auth_failures_total", route="docs") == 1
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT, headers=AUTH) as http:
        assert (await http.get("/api/ws/stats")).json()["error_count"] == 0
    # A client's refused authentication still is a client error.
    client = make_client(server)
    await client.connect()
    await client.call("authenticate", {"user_id": "", "organization_id": "org_a"})
    found = await samples(server)
    assert sum(v for (name, _), v in found.items() if name == "intraday_errors_total") == 1


def dashboard_expressions() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in board["panels"] for t in panel["targets"]]
    exprs += [v["query"] for v in board["templating"]["list"] if v["type"] == "query"]
    return exprs


async def test_every_metric_the_grafana_dashboard_queries_is_exported(
    make_server: ServerFactory,
) -> None:
    server = await make_server(admin_token=TOKEN)  # the memory store reports its size
    text = (await scrape(server)).text
    exported = set()
    for family in text_string_to_metric_families(text):
        exported.add(family.name)
        exported.update(sample.name for sample in family.samples)
        if family.type == "counter":
            exported.add(family.name + "_total")
        if family.type == "histogram":
            exported.update(family.name + s for s in ("_bucket", "_sum", "_count"))
    named = {m for expr in dashboard_expressions() for m in re.findall(r"\bintraday_\w+", expr)}
    assert named, "the dashboard names no metric"
    assert named <= exported, f"not exported: {sorted(named - exported)}"
    # And the dashboard shows every family (a new metric needs a panel).
    shown = {
        name.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count") for name in named
    }
    assert set(METRIC_NAMES) <= shown, sorted(set(METRIC_NAMES) - shown)


def _scale(expr: str) -> str:
    """What a query's values measure, read off its first metric's name."""
    metric = re.findall(r"\b(?:intraday|process|python)_\w+", expr)[0]
    return "seconds" if "_seconds" in metric else "bytes" if "_bytes" in metric else "count"


def test_the_dashboard_shows_a_server_that_is_down_and_mixes_no_scales_on_an_axis() -> None:
    # Issue 21 item 8: "servers up" summed intraday_up, which a server that is down does not
    # export (it could never show one), on one axis with the store's size and the uptime.
    panels = json.loads(DASHBOARD.read_text())["panels"]
    [up] = [p for p in panels if any(t["expr"].startswith("up{") for t in p["targets"])]
    assert {m["options"]["0"]["text"] for m in up["fieldConfig"]["defaults"]["mappings"]} == {
        "down"
    }
    for panel in panels:
        own_axis = {  # series given a unit (and so an axis) of their own
            o["matcher"]["options"]
            for o in panel.get("fieldConfig", {}).get("overrides", [])
            if o["matcher"]["id"] == "byFrameRefID"
            and any(p["id"] == "unit" for p in o["properties"])
        }
        shared = [t for t in panel["targets"] if t.get("refId") not in own_axis]
        scales = {_scale(t["expr"]) for t in shared if not t["expr"].startswith("up{")}
        assert len(scales) <= 1, (panel["title"], scales)
