"""The load run's figures as a table, a JSON file, or a self-contained HTML page.

The JSON report's top-level keys ``delivered``, ``lost``, ``duplicated``,
``out_of_order``, ``reconnects`` and ``latency_ms`` (``p50``, ``p90``,
``p99``, ``max``) are stable; the rest (``connect``, ``server``,
``timeline``...) may grow. The HTML page draws its plots as inline SVG: it
loads nothing, so it opens anywhere, offline included.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

__all__ = ["render_table", "write_report"]


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def _rows(figures: dict[str, Any]) -> list[tuple[str, str]]:
    lat = figures["latency_ms"]
    connect = figures["connect"]
    rows = [
        ("clients connected / failed", f"{connect['connected']} / {connect['failed']}"),
        ("connect time p50 / max (ms)", f"{_fmt(connect['p50_ms'])} / {_fmt(connect['max_ms'])}"),
        ("published (failed)", f"{figures['published']} ({figures['publish_failures']})"),
        ("publish rate (msg/s)", _fmt(figures["publish_rate"])),
        ("delivered / expected", f"{figures['delivered']:,} / {figures['expected']:,}"),
        ("deliveries per second", _fmt(figures["deliveries_per_second"])),
        ("latency p50 / p90 / p99 / max (ms)", " / ".join(_fmt(lat[k]) for k in lat)),
        ("lost (worst client)", f"{figures['lost']} ({figures['per_client']['lost_max']})"),
        (
            "duplicated (worst client)",
            f"{figures['duplicated']} ({figures['per_client']['duplicated_max']})",
        ),
        (
            "out of order (worst client)",
            f"{figures['out_of_order']} ({figures['per_client']['out_of_order_max']})",
        ),
        ("reconnects", _fmt(figures["reconnects"])),
    ]
    server = figures.get("server")
    if server and server.get("samples"):
        rows.append(
            (
                "server CPU mean / max (%)",
                f"{server['cpu_percent_mean']} / {server['cpu_percent_max']}",
            )
        )
        rows.append(
            (
                "server RSS first / last / max (MiB)",
                f"{server['rss_mib_first']} / {server['rss_mib_last']} / {server['rss_mib_max']}",
            )
        )
    else:
        rows.append(("server CPU / RSS", "not measured (not on this host, or no psutil)"))
    return rows


def render_table(figures: dict[str, Any]) -> str:
    """The figures as a plain two-column table."""
    rows = _rows(figures)
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def _tick(value: float) -> str:
    return f"{value:.3g}"


def _svg_plot(title: str, points: list[tuple[float, float]], unit: str) -> str:
    """A line plot with both axes labelled: three values up the side, three times along."""
    width, height = 640, 220
    left, right, top, bottom = 64, 16, 16, 44
    if not points:
        return f"<h2>{html.escape(title)}</h2><p>no data</p>"
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    x_max = max(max(xs), 1.0)
    y_max = max(max(ys), 1e-9)
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + x / x_max * plot_w

    def py(y: float) -> float:
        return top + plot_h - y / y_max * plot_h

    line = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
    axes: list[str] = []
    for fraction in (0.0, 0.5, 1.0):
        y = py(fraction * y_max)
        axes.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e6ea"/>'
            f'<text class="y-tick" x="{left - 6}" y="{y + 4:.1f}" font-size="11" '
            f'text-anchor="end">{_tick(fraction * y_max)}</text>'
        )
        x = px(fraction * x_max)
        axes.append(
            f'<text class="x-tick" x="{x:.1f}" y="{top + plot_h + 16}" font-size="11" '
            f'text-anchor="middle">{_tick(fraction * x_max)} s</text>'
        )
    unit_label = html.escape(unit)
    middle = top + plot_h / 2
    return (
        f"<h2>{html.escape(title)}</h2>"
        f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img">'
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" '
        'fill="#fbfcfd" stroke="#ccc"/>'
        f"{''.join(axes)}"
        f'<polyline points="{line}" fill="none" stroke="#2563eb" stroke-width="2"/>'
        f'<text class="y-title" x="14" y="{middle:.1f}" font-size="12" '
        f'text-anchor="middle" transform="rotate(-90 14 {middle:.1f})">{unit_label}</text>'
        f'<text class="x-title" x="{left + plot_w / 2:.1f}" y="{height - 6}" font-size="12" '
        'text-anchor="middle">seconds since the start</text></svg>'
    )


def render_html(figures: dict[str, Any]) -> str:
    """A self-contained HTML report: the table, latency and throughput over time, RSS."""
    timeline = figures["timeline"]
    table = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in _rows(figures)
    )
    plots = [
        _svg_plot(
            "Deliveries per second", [(p["second"], p["deliveries"]) for p in timeline], "/s"
        ),
        _svg_plot(
            "Mean end-to-end latency per second",
            [(p["second"], p["mean_ms"]) for p in timeline],
            "ms",
        ),
        _svg_plot("Max latency per second", [(p["second"], p["max_ms"]) for p in timeline], "ms"),
    ]
    server = figures.get("server") or {}
    if server.get("samples"):
        rss = [(s["t"], s["rss_mib"]) for s in server["samples"]]
        plots.append(_svg_plot("Server RSS", rss, "MiB"))
    raw = html.escape(json.dumps({k: v for k, v in figures.items() if k != "timeline"}, indent=2))
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<title>intraday-live load report</title><style>"
        "body{font:14px system-ui,sans-serif;margin:2rem;color:#1d2430}"
        "table{border-collapse:collapse}th,td{padding:.25rem .8rem;border-bottom:1px solid #ddd;"
        "text-align:left}h2{font-size:1rem;margin-top:1.5rem}</style></head><body>"
        f"<h1>intraday-live load report</h1><table>{table}</table>{''.join(plots)}"
        f"<h2>Figures</h2><pre>{raw}</pre></body></html>\n"
    )


def write_report(figures: dict[str, Any], path: Path) -> None:
    """Write ``figures`` as JSON (``.json``) or HTML (``.html``/``.htm``).

    Raises:
        ValueError: another suffix.
    """
    suffix = path.suffix.lower()
    if suffix == ".json":
        path.write_text(json.dumps(figures, indent=2) + "\n")
    elif suffix in (".html", ".htm"):
        path.write_text(render_html(figures))
    else:
        raise ValueError(f"--report: use a .json or .html file, not {path.name}")
