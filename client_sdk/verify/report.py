"""A verify run's figures as a table, as JSON and as JUnit XML."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from .run import VerifyResult

__all__ = ["as_json", "render_table", "write_json", "write_junit"]

_COLUMNS = (
    ("stream", "stream"),
    ("kind", "client"),
    ("subscribers", "subs"),
    ("published", "published"),
    ("delivered", "delivered"),
    ("lost", "lost"),
    ("lost_reported", "lost+reported"),
    ("duplicated", "duplicated"),
    ("out_of_order", "out of order"),
    ("phantom", "phantom"),
    ("replayed", "replayed"),
    ("gaps_reported", "gaps"),
)


def render_table(result: VerifyResult) -> str:
    """The per-stream figures and the headline, as text."""
    rows = [r.as_dict() for r in [*result.rows, result.total]]
    header = [title for _, title in _COLUMNS] + ["% delivered"]
    lines = [
        [str(row[key]) for key, _ in _COLUMNS] + [f"{row['delivered_percent']:.2f}"] for row in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]

    def fmt(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i > 1 else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    out = [fmt(header), fmt(["-" * w for w in widths])]
    out += [fmt(line) for line in lines]
    total = result.total
    out.append("")
    out.append(
        f"{total.delivered_percent:.2f} % delivered under {result.scenario} "
        f"({total.delivered} of {total.expected}; lost in silence {total.lost}, "
        f"lost but reported {total.lost_reported})"
    )
    out += result.notes
    return "\n".join(out)


def as_json(result: VerifyResult) -> dict[str, Any]:
    """The run as a JSON-ready object."""
    c = result.config
    return {
        "url": c.url,
        "run_id": result.ledger.run_id,
        "organization_id": result.ledger.organization_id,
        "scenario": result.scenario,
        "fault": c.fault,
        "faults_applied": result.faults_applied,
        "duration_seconds": round(result.seconds, 3),
        "rate": c.rate,
        "sdk_clients": c.sdk_clients,
        "raw_clients": c.raw_clients,
        "delivered_percent": round(result.total.delivered_percent, 3),
        "clean": result.clean,
        "streams": [r.as_dict() for r in result.rows],
        "total": result.total.as_dict(),
        "notes": result.notes,
    }


def write_json(result: VerifyResult, path: Path) -> None:
    """Write :func:`as_json` to ``path``."""
    path.write_text(json.dumps(as_json(result), indent=2) + "\n", encoding="utf-8")


def write_junit(result: VerifyResult, path: Path) -> None:
    """One test case per stream and client kind: it fails on silent loss, duplicates,
    reordering or phantoms (a reported gap is the protocol working, not a failure)."""
    suite = ET.Element(
        "testsuite",
        name="intraday-live verify",
        tests=str(len(result.rows)),
        failures=str(sum(1 for r in result.rows if not r.clean)),
        time=f"{result.seconds:.3f}",
    )
    for row in result.rows:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"verify.{result.config.fault}",
            name=f"{row.stream} ({row.kind} clients)",
        )
        if not row.clean:
            failure = ET.SubElement(
                case,
                "failure",
                message=f"lost {row.lost}, duplicated {row.duplicated}, "
                f"out of order {row.out_of_order}, phantom {row.phantom}",
            )
            failure.text = json.dumps(row.as_dict(), indent=2)
        ET.SubElement(case, "system-out").text = (
            f"{row.delivered_percent:.2f} % delivered under {result.scenario}; "
            f"lost but reported {row.lost_reported}"
        )
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
