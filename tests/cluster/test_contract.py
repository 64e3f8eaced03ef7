"""The whole contract suite, destructive checks included, passes against a cluster node.

Two nodes share the Redis; the suite talks to one of them, so every
delivery it checks went through Redis and back, and every limit it
provokes is the cluster's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from client_sdk.contract import Outcome, Section, format_summary, run_contract
from reference_server.app import ReferenceServer
from tests.contract.conftest import SMALL_LIMITS, contract_config
from tests.processes import RedisProcess


@pytest.mark.timeout(120)
async def test_every_check_passes_against_a_cluster_node(
    make_server: Callable[..., Awaitable[ReferenceServer]], tmp_path: Path
) -> None:
    async with RedisProcess(tmp_path) as redis:
        node = await make_server(**SMALL_LIMITS, cluster=redis.url, node_id="n0")
        await make_server(**SMALL_LIMITS, cluster=redis.url, node_id="n1")
        report = await run_contract(contract_config(node))
        summary = format_summary(report)
        assert not report.failed, summary
        skipped = report.with_outcome(Outcome.SKIP)
        # batch (not advertised) and the two jwt-mode checks, as on a single server.
        assert {r.check.section for r in skipped} == {
            Section.CAPABILITIES,
            Section.AUTHENTICATION,
        }, summary
        assert len(skipped) == 3, summary
        assert set(report.counts()) == set(Section)
        assert report.counts()[Section.LIMITS][Outcome.PASS] == 5
