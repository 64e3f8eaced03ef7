"""``examples/contract_test``: a user's pytest run with the contract plugin and their own tests."""

from __future__ import annotations

import asyncio
import sys

from client_sdk.testing import running_server
from tests.examples._support import EXAMPLES, ROOT

TOKEN = "contract-example-token"
SUBSET = "my_server or client_ping or get_health or post_broadcast_answers"
"""The user's own tests plus a few contract checks: the suite itself is tested elsewhere."""


async def run_pytest(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pytest", str(EXAMPLES / "contract_test"),
        "-p", "no:cacheprovider", "-v", *args,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 50)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_the_contract_checks_and_the_users_own_tests_run_together() -> None:
    async with running_server(admin_token=TOKEN) as server:
        status, out = await run_pytest(
            "--intraday-url", server.url, "--intraday-admin-token", TOKEN,
            "--intraday-org", "example-a", "--intraday-org", "example-b", "-k", SUBSET,
        )  # fmt: skip
    assert status == 0, out
    assert "test_my_server.py::test_my_server_is_healthy PASSED" in out
    assert "test_my_server.py::test_my_extra_kpi_fields_reach_subscribers PASSED" in out
    assert "intraday-contract::s7_client_ping_" in out
    assert "intraday-contract::s9_http_api_get_health_answers_without_a_token PASSED" in out
    assert " 5 passed" in out, out


async def test_without_a_url_the_users_tests_skip_and_no_check_is_added() -> None:
    status, out = await run_pytest("-rs")
    assert status == 0, out
    assert "intraday-contract" not in out
    assert "2 skipped" in out, out
    assert "no --intraday-url: no server to test" in out
