"""``-p client_sdk.contract.pytest_plugin``: one pytest item per check, skips as skips."""

from __future__ import annotations

import asyncio

import pytest

from tests.contract import faults
from tests.contract.conftest import ADMIN_TOKEN, FaultyServerFactory

pytest_plugins = ["pytester"]


async def test_one_item_per_check_with_passes_skips_and_failures(
    make_faulty_server: FaultyServerFactory, pytester: pytest.Pytester
) -> None:
    server = await make_faulty_server(faults.DELIVER_ONCE_PER_ROOM)
    args = [
        "-p",
        "client_sdk.contract.pytest_plugin",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:asyncio",
        "--intraday-url",
        server.url,
        "--intraday-admin-token",
        ADMIN_TOKEN,
        "--intraday-org",
        "org_a",
        "-k",
        "client_ping or capabilities or one_delivery_per_socket",
        "-rs",
        "-v",
    ]
    # pytester blocks while the server runs in this loop: run it in a thread.
    result = await asyncio.to_thread(pytester.runpytest_subprocess, *args, timeout=60)
    # Passed: ping, batch, replay x4, snapshot x2; skipped: (not --destructive) the old since.
    result.assert_outcomes(passed=8, skipped=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*collected * items / * deselected / 10 selected*",
            "intraday-contract::s4_delivery_rule_one_delivery_per_socket_* FAILED*",
            "intraday-contract::s5_6_capabilities_5_batch_* PASSED*",
            "intraday-contract::s7_client_ping_* PASSED*",
            "*§4 delivery rule: one delivery per socket however many of its rooms match*",
            "expected: exactly one delivery to a socket subscribed at all four room levels",
            "sent: * kpi:update to *",
            "received: 4 copies",
            "SKIPPED *replay.py:*: pushes a server limit: runs only with --destructive*",
        ]
    )


def test_without_a_url_the_plugin_adds_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_own():\n    pass\n")
    result = pytester.runpytest_inprocess(
        "-p", "client_sdk.contract.pytest_plugin", "-p", "no:asyncio", "-q"
    )
    result.assert_outcomes(passed=1)
