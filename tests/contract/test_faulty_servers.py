"""The suite can fail: each deliberately broken server is caught by the check meant for it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from client_sdk.contract import Outcome, format_summary, run_contract
from reference_server.app import ReferenceServer
from tests.contract import faults
from tests.contract.conftest import contract_config

ISOLATION = (
    "§4 delivery rule: no cross-organization delivery, whatever the ids, filters and targets"
)
ONCE = "§4 delivery rule: one delivery per socket however many of its rooms match"
AUTH_TIMEOUT = "§3 authentication: an unauthenticated socket gets AUTH_FAILED and is disconnected"
ENVELOPE = "§5 envelopes and payloads: every envelope field is present with its type"
OVERSIZE = "§8 limits: an oversized message is MESSAGE_TOO_LARGE and the connection stays up"


@pytest.mark.parametrize(
    ("fault", "section", "caught_by", "quoted"),
    [
        pytest.param(
            faults.leak_across_organizations,
            "§4 delivery rule",
            ISOLATION,
            "leaked",
            id="leaks-other-organizations",
        ),
        pytest.param(
            faults.deliver_once_per_room,
            "§4 delivery rule",
            ONCE,
            "4 copies",
            id="delivers-once-per-room",
        ),
        pytest.param(
            faults.ignore_auth_timeout,
            "§3 authentication",
            AUTH_TIMEOUT,
            "connect, then nothing",
            id="ignores-auth-timeout",
        ),
        pytest.param(
            lambda s: faults.drop_envelope_field(s, "channel"),
            "every envelope field",
            ENVELOPE,
            "missing: ['channel']",
            id="envelope-without-channel",
        ),
        pytest.param(
            faults.ignore_oversize,
            "oversized message",
            OVERSIZE,
            "no ack",
            id="ignores-oversized-messages",
        ),
        pytest.param(
            faults.close_on_oversize,
            "oversized message",
            OVERSIZE,
            "connection lost",
            id="closes-on-oversized-messages",
        ),
    ],
)
async def test_fault_is_caught_by_its_check(
    small_server: ReferenceServer,
    fault: Callable[[ReferenceServer], None],
    section: str,
    caught_by: str,
    quoted: str,
) -> None:
    fault(small_server)
    config = contract_config(small_server, auth_timeout_wait=1.5, request_timeout=1.5)
    report = await run_contract(config, select=[section])
    summary = format_summary(report)
    result = report.result(caught_by)
    assert result.outcome is Outcome.FAIL, summary
    # The failure says what the rule is, what was sent and what came back.
    assert result.message.startswith("expected: "), result.message
    assert "\nsent:" in result.message, result.message
    assert "\nreceived:" in result.message, result.message
    assert quoted in result.message, result.message
    assert report.failed
    assert f"FAIL {caught_by}" in summary


async def test_leak_is_caught_only_by_the_isolation_check(small_server: ReferenceServer) -> None:
    """Single-organization delivery checks still pass: the fault is named precisely."""
    faults.leak_across_organizations(small_server)
    report = await run_contract(contract_config(small_server), select=["§4 delivery rule"])
    failed = [r.check.title for r in report.with_outcome(Outcome.FAIL)]
    assert failed == [ISOLATION], format_summary(report)


async def test_duplicates_are_caught_only_by_the_overlap_check(
    small_server: ReferenceServer,
) -> None:
    faults.deliver_once_per_room(small_server)
    report = await run_contract(contract_config(small_server), select=["§4 delivery rule"])
    failed = [r.check.title for r in report.with_outcome(Outcome.FAIL)]
    assert failed == [ONCE], format_summary(report)
