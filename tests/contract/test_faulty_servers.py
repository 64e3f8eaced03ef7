"""The suite can fail: each deliberately broken server is caught by the check meant for it."""

from __future__ import annotations

import pytest

from client_sdk.contract import Outcome, format_summary, run_contract
from tests.contract import faults
from tests.contract.conftest import FaultyServerFactory, contract_config

ISOLATION = (
    "§4 delivery rule: no cross-organization delivery, whatever the ids, filters and targets"
)
ONCE = "§4 delivery rule: one delivery per socket however many of its rooms match"
AUTH_TIMEOUT = "§3 authentication: an unauthenticated socket gets AUTH_FAILED and is disconnected"
ENVELOPE = "§5 envelopes and payloads: every envelope field is present with its type"
OVERSIZE = "§8 limits: an oversized message is MESSAGE_TOO_LARGE and the connection stays up"
REPLAY = "§5-6 capabilities: §6 replay: subscribe with since replays what followed, in order"
REPLAY_FIRST = (
    "§5-6 capabilities: §6 replay: the replay comes before newer live messages, each once"
)
BEYOND_LOG = "§5-6 capabilities: §6 replay: a since beyond the log limit is complete: false"
NEVER_TWICE = "§5-6 capabilities: §6 snapshot: with since as well, no message is sent twice"


@pytest.mark.parametrize(
    ("fault", "section", "caught_by", "quoted"),
    [
        pytest.param(
            faults.LEAK_ACROSS_ORGANIZATIONS,
            "§4 delivery rule",
            ISOLATION,
            "leaked",
            id="leaks-other-organizations",
        ),
        pytest.param(
            faults.DELIVER_ONCE_PER_ROOM,
            "§4 delivery rule",
            ONCE,
            "4 copies",
            id="delivers-once-per-room",
        ),
        pytest.param(
            faults.IGNORE_AUTH_TIMEOUT,
            "§3 authentication",
            AUTH_TIMEOUT,
            "connect, then nothing",
            id="ignores-auth-timeout",
        ),
        pytest.param(
            faults.drop_envelope_field("channel"),
            "every envelope field",
            ENVELOPE,
            "missing: ['channel']",
            id="envelope-without-channel",
        ),
        pytest.param(
            faults.IGNORE_OVERSIZE,
            "oversized message",
            OVERSIZE,
            "no ack",
            id="ignores-oversized-messages",
        ),
        pytest.param(
            faults.CLOSE_ON_OVERSIZE,
            "oversized message",
            OVERSIZE,
            "connection lost",
            id="closes-on-oversized-messages",
        ),
        pytest.param(
            faults.REPLAY_SKIPS_A_MESSAGE,
            "§6 replay: subscribe with since",
            REPLAY,
            "missing",
            id="replay-skips-a-middle-message",
        ),
        pytest.param(
            faults.LIVE_OVERTAKES_REPLAY,
            "§6 replay: the replay comes before",
            REPLAY_FIRST,
            "overtook",
            id="live-overtakes-replay",
        ),
        pytest.param(
            faults.COMPLETE_WITHOUT_THE_LOG,
            "§6 replay: a since beyond the log",
            BEYOND_LOG,
            "complete: true, yet the replay lacks",
            id="complete-without-the-log",
        ),
        pytest.param(
            faults.SNAPSHOT_AND_REPLAY_BOTH,
            "§6 snapshot: with since",
            NEVER_TWICE,
            "2 times",
            id="snapshot-and-replay-both",
        ),
    ],
)
async def test_fault_is_caught_by_its_check(
    make_faulty_server: FaultyServerFactory,
    fault: faults.Fault,
    section: str,
    caught_by: str,
    quoted: str,
) -> None:
    server = await make_faulty_server(fault)
    # max_burst: a log that claims to reach back forever is published past in 200 messages.
    config = contract_config(server, auth_timeout_wait=1.5, request_timeout=1.5, max_burst=200)
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


async def test_leak_is_caught_only_by_the_isolation_check(
    make_faulty_server: FaultyServerFactory,
) -> None:
    """Single-organization delivery checks still pass: the fault is named precisely."""
    server = await make_faulty_server(faults.LEAK_ACROSS_ORGANIZATIONS)
    report = await run_contract(contract_config(server), select=["§4 delivery rule"])
    failed = [r.check.title for r in report.with_outcome(Outcome.FAIL)]
    assert failed == [ISOLATION], format_summary(report)


async def test_duplicates_are_caught_only_by_the_overlap_check(
    make_faulty_server: FaultyServerFactory,
) -> None:
    server = await make_faulty_server(faults.DELIVER_ONCE_PER_ROOM)
    report = await run_contract(contract_config(server), select=["§4 delivery rule"])
    failed = [r.check.title for r in report.with_outcome(Outcome.FAIL)]
    assert failed == [ONCE], format_summary(report)
