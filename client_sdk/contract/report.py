"""A run's results for people (a summary per section) and for CI (JUnit XML)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from .model import CheckResult, Outcome
from .runner import ContractReport

__all__ = ["format_result", "format_summary", "junit_xml", "write_junit"]

_MARK = {Outcome.PASS: "PASS", Outcome.FAIL: "FAIL", Outcome.SKIP: "SKIP"}


def format_result(result: CheckResult) -> str:
    """One line for progress output: ``PASS §4 delivery rule: queue filter (0.12 s)``."""
    line = f"{_MARK[result.outcome]} {result.check.title} ({result.duration:.2f} s)"
    if result.outcome is Outcome.SKIP:
        line += f" - {result.message}"
    return line


def format_summary(report: ContractReport, *, verbose: bool = False) -> str:
    """The counts per section, then every failure in full and every skip's reason."""
    config = report.config
    lines = [
        f"Intraday protocol v1 contract against {config.url}{config.socketio_path} "
        f"(organizations: {', '.join(config.organizations)}; "
        f"{'destructive' if config.destructive else 'non-destructive'})"
        + (
            f" - ORGANIZATION ISOLATION NOT CHECKED: {report.isolation_unchecked}"
            if report.isolation_unchecked
            else ""
        ),
    ]
    if report.unreachable is not None:
        lines.append(f"server unreachable: {report.unreachable}")
    width = max([len(s.title) for s in report.counts()] + [len("section")])
    lines.append(f"{'section':<{width}}  pass  fail  skip")
    for section, counts in report.counts().items():
        lines.append(
            f"{section.title:<{width}}  {counts[Outcome.PASS]:>4}  {counts[Outcome.FAIL]:>4}"
            f"  {counts[Outcome.SKIP]:>4}"
        )
    totals = report.totals()
    lines.append(
        f"{'total':<{width}}  {totals[Outcome.PASS]:>4}  {totals[Outcome.FAIL]:>4}"
        f"  {totals[Outcome.SKIP]:>4}"
    )
    for result in report.with_outcome(Outcome.FAIL):
        lines.append("")
        lines.append(f"FAIL {result.check.title}")
        lines.extend(f"  {line}" for line in result.message.splitlines())
    skipped = report.with_outcome(Outcome.SKIP)
    if skipped:
        lines.append("")
        lines.extend(f"SKIP {r.check.title}: {r.message}" for r in skipped)
    if verbose:
        lines.append("")
        lines.extend(format_result(r) for r in report.with_outcome(Outcome.PASS))
    lines.append("")
    lines.append("FAILED" if report.failed else "PASSED")
    return "\n".join(lines)


def junit_xml(report: ContractReport) -> ET.ElementTree:
    """The results as JUnit XML: one ``testsuite`` per section, one ``testcase`` per check."""
    totals = report.totals()
    root = ET.Element(
        "testsuites",
        name="intraday-contract",
        tests=str(len(report.results)),
        failures=str(totals[Outcome.FAIL]),
        skipped=str(totals[Outcome.SKIP]),
        errors="0",
        time=f"{sum(r.duration for r in report.results):.3f}",
    )
    by_section: dict[str, list[CheckResult]] = {}
    for result in report.results:
        by_section.setdefault(result.check.section.title, []).append(result)
    for title, results in by_section.items():
        suite = ET.SubElement(
            root,
            "testsuite",
            name=title,
            tests=str(len(results)),
            failures=str(sum(r.outcome is Outcome.FAIL for r in results)),
            skipped=str(sum(r.outcome is Outcome.SKIP for r in results)),
            errors="0",
            time=f"{sum(r.duration for r in results):.3f}",
        )
        for result in results:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"intraday_contract.{result.check.slug.split('_', 1)[0]}",
                name=result.check.title,
                time=f"{result.duration:.3f}",
            )
            if result.outcome is Outcome.FAIL:
                failure = ET.SubElement(
                    case, "failure", message=(result.message.splitlines() or [""])[0][:500]
                )
                failure.text = result.message
            elif result.outcome is Outcome.SKIP:
                ET.SubElement(case, "skipped", message=result.message)
    tree = ET.ElementTree(root)
    ET.indent(tree)
    return tree


def write_junit(report: ContractReport, path: str | Path) -> None:
    """Write :func:`junit_xml` to ``path`` (UTF-8, with an XML declaration)."""
    junit_xml(report).write(path, encoding="utf-8", xml_declaration=True)
