"""The suite's own parts, without a server: registry, samples, options, tokens, JUnit."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import jwt
import pytest

import client_sdk.contract as contract
from client_sdk.contract import (
    CheckResult,
    ContractConfig,
    ContractReport,
    Outcome,
    Section,
    all_checks,
    format_summary,
    junit_xml,
    select_checks,
    write_junit,
)
from client_sdk.contract._samples import SEED_KPI_UPDATE, sample_payload
from client_sdk.contract._tokens import hs256_token
from client_sdk.contract.model import CheckFailure, show
from client_sdk.protocol import EVENT_PAYLOADS, KpiPayload, ServerEvent


def test_public_surface() -> None:
    assert sorted(contract.__all__) == contract.__all__
    for name in contract.__all__:
        assert getattr(contract, name) is not None


def test_every_section_has_checks_with_unique_titles_and_slugs() -> None:
    checks = all_checks()
    assert {c.section for c in checks} == set(Section)
    assert len({c.title for c in checks}) == len(checks)
    assert len({c.slug for c in checks}) == len(checks)
    for c in checks:
        assert c.title.startswith(c.section.number)
        assert c.slug.isidentifier(), c.slug
        assert c.function.__doc__, f"{c.title} has no docstring"
    # One payload check per server event.
    payload_checks = [c for c in checks if c.name.startswith("payload schema of ")]
    assert {c.name.removeprefix("payload schema of ") for c in payload_checks} == {
        e.value for e in ServerEvent
    }
    # Checks that push limits are exactly the destructive ones.
    destructive = {c.title for c in checks if c.needs.destructive}
    assert all("limit" in t or "oversized" in t for t in destructive), destructive


def test_selection_by_title_or_slug() -> None:
    by_title = select_checks(["§4 delivery rule: queue"])
    assert [c.name for c in by_title] == ["queue filter"]
    assert select_checks([by_title[0].slug]) == by_title
    assert select_checks([]) == all_checks()


@pytest.mark.parametrize("event", list(ServerEvent))
def test_samples_are_valid_payloads_of_their_event(event: ServerEvent) -> None:
    data = sample_payload(event, "probe-1", "org_a", "dept_1", "queue_1")
    payload = EVENT_PAYLOADS[event].model_validate(data)
    assert payload.model_extra == {"contract_probe": "probe-1"}


def test_seed_example_is_a_kpi_update() -> None:
    KpiPayload.model_validate(SEED_KPI_UPDATE)


def test_tokens_are_valid_hs256_jwts() -> None:
    secret = "contract-suite-hs256-secret-of-32-bytes"
    token = hs256_token(secret, user_id="contract-u", organization_id="org_a")
    claims = jwt.decode(token, secret, algorithms=["HS256"])
    assert (claims["sub"], claims["org"]) == ("contract-u", "org_a")
    assert claims["exp"] > claims["iat"]


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"url": "127.0.0.1:5000"}, "url"),
        ({"organizations": ()}, "organizations"),
        ({"organizations": ("a:b",)}, "organizations"),
        ({"organizations": ("a", "a")}, "distinct"),
        ({"path": "ws"}, "path"),
        ({"request_timeout": 0}, "request_timeout"),
    ],
)
def test_config_rejects_bad_options(changes: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        ContractConfig(**{"url": "http://127.0.0.1:5000", **changes})  # type: ignore[arg-type]


def test_config_derives_the_bridge_url() -> None:
    config = ContractConfig(url="https://example.com/", path="/live/ws/")
    assert config.url == "https://example.com"
    assert config.bridge_url == "wss://example.com/live/ws"
    assert not config.is_loopback
    assert ContractConfig(url="http://127.0.0.1:1").is_loopback


def test_failure_message_says_what_was_sent_and_received() -> None:
    failure = CheckFailure("a rule", sent={"a": 1}, received="x" * 5000)
    lines = str(failure).splitlines()
    assert lines[0] == "expected: a rule"
    assert lines[1] == 'sent:     {"a":1}'
    assert lines[2].startswith("received: xxx")
    assert lines[2].endswith("... (5000 characters)")
    assert len(lines[2]) < 1600
    assert len(show(list(range(1000)))) < 700


def _report() -> ContractReport:
    by_title = {c.title: c for c in all_checks()}
    results = (
        CheckResult(
            by_title[
                "§7 client:ping: client:ping is acked and answered by client:pong, timestamp echoed"
            ],
            Outcome.PASS,
            duration=0.01,
        ),
        CheckResult(
            by_title["§4 delivery rule: queue filter"],
            Outcome.FAIL,
            "expected: once\nsent:     x\nreceived: y",
            0.2,
        ),
        CheckResult(by_title["§4 delivery rule: organization filter"], Outcome.SKIP, "why"),
    )
    return ContractReport(ContractConfig(url="http://127.0.0.1:1"), results)


def test_summary_counts_per_section_and_quotes_failures() -> None:
    summary = format_summary(_report())
    assert "§4 delivery rule     0     1     1" in summary
    assert "§7 client:ping       1     0     0" in summary
    assert "FAIL §4 delivery rule: queue filter\n  expected: once\n  sent:     x" in summary
    assert "SKIP §4 delivery rule: organization filter: why" in summary
    assert summary.endswith("FAILED")


def test_junit_has_a_suite_per_section_and_a_case_per_check(tmp_path: Path) -> None:
    report = _report()
    root = junit_xml(report).getroot()
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("3", "1", "1")
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["§7 client:ping", "§4 delivery rule"]
    failure = root.find(".//failure")
    assert failure is not None
    assert failure.get("message") == "expected: once"
    assert "received: y" in (failure.text or "")
    path = tmp_path / "junit.xml"
    write_junit(report, path)
    assert path.read_bytes().startswith(b"<?xml")
    assert ET.parse(path).getroot().get("name") == "intraday-contract"
