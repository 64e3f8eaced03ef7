"""The reference server passes the whole contract suite, destructive checks included."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from client_sdk.contract import Outcome, Section, format_summary, run_contract
from reference_server.app import ReferenceServer
from tests.conftest import ServerFactory
from tests.contract.conftest import SMALL_LIMITS, contract_config

SECRET = "contract-suite-hs256-secret-of-32-bytes"
"""At least 32 bytes: PyJWT warns about shorter HMAC keys (an error under our filterwarnings)."""

CAPABILITY_SKIPS = 0
"""None: the reference server advertises batch, and every replay and snapshot check runs
against its memory store (SMALL_LIMITS' 100-message log lets the destructive one provoke
a since older than the log reaches, so it passes instead of skipping)."""

SECTION_6 = ["§6 replay", "§6 snapshot"]


async def test_every_check_passes_against_the_reference_server(
    small_server: ReferenceServer,
) -> None:
    report = await run_contract(contract_config(small_server))
    summary = format_summary(report)
    assert not report.failed, summary
    skipped = report.with_outcome(Outcome.SKIP)
    assert {r.check.section for r in skipped} == {Section.AUTHENTICATION}, summary
    assert [r.check.name for r in skipped if r.check.section is Section.AUTHENTICATION] == [
        "jwt mode: an invalid token is AUTH_FAILED, not retryable",
        "jwt mode: an expired token is AUTH_FAILED token_expired",
    ]
    assert len(skipped) == CAPABILITY_SKIPS + 2
    assert all(
        "does not advertise" in r.message
        for r in skipped
        if r.check.section is Section.CAPABILITIES
    )
    # Every section of the protocol is covered, destructive limits included.
    assert set(report.counts()) == set(Section)
    assert report.counts()[Section.LIMITS][Outcome.PASS] == 5


async def test_non_destructive_quick_run_skips_limits_and_timers(
    small_server: ReferenceServer,
) -> None:
    config = contract_config(small_server, destructive=False, quick=True, organizations=("org_a",))
    report = await run_contract(
        config,
        select=["§3 authentication", "§8 limits", "isolation", "cross-organization", "bridge"],
    )
    assert not report.failed, format_summary(report)
    reasons = {r.check.title: r.message for r in report.with_outcome(Outcome.SKIP)}
    assert all(
        "--destructive" in reasons[r.check.title]
        for r in report.results
        if r.check.section is Section.LIMITS
    )
    assert (
        "--quick"
        in reasons[
            "§3 authentication: an unauthenticated socket gets AUTH_FAILED and is disconnected"
        ]
    )
    # One organization given, but the server is in trust mode: the suite
    # generates a second one and checks isolation anyway.
    isolation = next(r for r in report.results if "cross-organization" in r.check.name)
    assert isolation.outcome is Outcome.PASS
    assert len(report.config.organizations) == 2


async def test_jwt_mode_server_with_a_signing_secret(
    make_server: Callable[..., Awaitable[ReferenceServer]],
) -> None:
    server = await make_server(auth_mode="jwt", jwt_secret=SECRET, admin_token="t")
    config = contract_config(server, admin_token="t", jwt_secret=SECRET, quick=True)
    report = await run_contract(config, select=["§3 authentication", "§4 subscriptions"])
    assert not report.failed, format_summary(report)
    outcome = {r.check.name: r.outcome for r in report.results}
    assert outcome["jwt mode: an invalid token is AUTH_FAILED, not retryable"] is Outcome.PASS
    assert outcome["jwt mode: an expired token is AUTH_FAILED token_expired"] is Outcome.PASS
    assert outcome["trust mode says so in /health"] is Outcome.SKIP


async def test_jwt_mode_server_without_a_secret_skips_with_the_reason(
    make_server: Callable[..., Awaitable[ReferenceServer]],
) -> None:
    server = await make_server(auth_mode="jwt", jwt_secret=SECRET, admin_token="t")
    report = await run_contract(
        contract_config(server, admin_token="t"), select=["§4 subscriptions", "GET /health"]
    )
    assert not report.failed, format_summary(report)
    health = report.result("§9 HTTP API: GET /health answers without a token")
    assert health.outcome is Outcome.PASS
    for result in report.results:
        if result.check.needs.auth:
            assert result.outcome is Outcome.SKIP, result
            assert "--jwt-secret" in result.message
        else:
            assert result.outcome is Outcome.PASS, result


async def test_replay_checks_pass_against_the_redis_store(
    make_server: Callable[..., Awaitable[ReferenceServer]], redis_url: str
) -> None:
    """Another reading of §6: Redis trims its log approximately (MAXLEN ~), by whole nodes."""
    server = await make_server(**SMALL_LIMITS, store=redis_url)
    report = await run_contract(contract_config(server), select=SECTION_6)
    summary = format_summary(report)
    assert [r.outcome for r in report.results] == [Outcome.PASS] * 7, summary


async def test_replay_checks_skip_on_a_server_without_a_store(
    make_server: Callable[..., Awaitable[ReferenceServer]],
) -> None:
    server = await make_server(**SMALL_LIMITS, store="none")
    report = await run_contract(contract_config(server), select=SECTION_6)
    assert len(report.results) == 7, format_summary(report)
    for result in report.results:
        assert result.outcome is Outcome.SKIP, result
        assert "does not advertise" in result.message, result


async def test_a_server_without_batching_skips_the_batch_check(make_server: ServerFactory) -> None:
    server = await make_server(batching_enabled=False)
    report = await run_contract(contract_config(server), select=["§5 batch"])
    assert not report.failed, format_summary(report)
    [result] = report.results
    assert result.outcome is Outcome.SKIP
    assert "does not advertise 'batch'" in result.message
