"""The contract suite as pytest items: ``pytest -p client_sdk.contract.pytest_plugin``.

Enable it in any project and point it at a running server::

    pytest -p client_sdk.contract.pytest_plugin --intraday-url http://127.0.0.1:5000 \\
        --intraday-admin-token T --intraday-org contract-a --intraday-org contract-b

Every check becomes one test item named by its slug (select with ``-k``,
e.g. ``-k delivery_rule``), reported under its protocol title; a skipped
check is a pytest skip with its reason, a failed one shows what was sent and
what came back. Without ``--intraday-url`` the plugin adds nothing.

The server is probed once per session; each item then runs in its own event
loop (``asyncio.run``), so the plugin needs no async pytest plugin.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest

from ._context import ServerProfile, ServerUnreachableError
from .checks import all_checks
from .config import ContractConfig
from .model import Check, CheckResult, Outcome
from .runner import ContractSession

__all__ = [
    "ContractCheckFailedError",
    "ContractItem",
    "pytest_addoption",
    "pytest_collection_modifyitems",
]

_CONFIG = pytest.StashKey[ContractConfig]()
_RUN_ID = pytest.StashKey[str]()
_PROFILE = pytest.StashKey["ServerProfile | str"]()
"""The probed profile, or why the server could not be probed."""


def pytest_addoption(parser: pytest.Parser) -> None:
    """The ``--intraday-*`` options."""
    group = parser.getgroup("intraday", "Intraday live-updates protocol contract suite")
    group.addoption("--intraday-url", help="the server to check, http://host:port")
    group.addoption("--intraday-path", default="/ws", help="the Socket.IO path (default /ws)")
    group.addoption("--intraday-admin-token", help="bearer token of the management API")
    group.addoption(
        "--intraday-org",
        action="append",
        default=[],
        help="an organization the suite may use (repeatable; two enable isolation checks)",
    )
    group.addoption("--intraday-jwt-secret", help="HS256 secret for jwt-mode servers")
    group.addoption(
        "--intraday-destructive", action="store_true", help="also push the server's limits"
    )
    group.addoption(
        "--intraday-quick", action="store_true", help="skip checks that wait for server timers"
    )
    group.addoption(
        "--intraday-auth-timeout-wait",
        type=float,
        default=15.0,
        help="seconds to wait for the server's authentication timeout (default 15)",
    )


def _contract_config(config: pytest.Config) -> ContractConfig | None:
    url = config.getoption("intraday_url")
    if not url:
        return None
    orgs = config.getoption("intraday_org") or ["contract-org"]
    try:
        return ContractConfig(
            url=url,
            organizations=tuple(orgs),
            path=config.getoption("intraday_path"),
            admin_token=config.getoption("intraday_admin_token"),
            jwt_secret=config.getoption("intraday_jwt_secret"),
            destructive=config.getoption("intraday_destructive"),
            quick=config.getoption("intraday_quick"),
            auth_timeout_wait=config.getoption("intraday_auth_timeout_wait"),
        )
    except ValueError as exc:
        raise pytest.UsageError(f"--intraday-*: {exc}") from None


class ContractCheckFailedError(AssertionError):
    """A contract check failed; its message says what was sent and what came back."""

    def __init__(self, result: CheckResult) -> None:
        super().__init__(result.message)
        self.result = result


class _Suite(pytest.Collector):
    """The parent of every contract item (not collected from a file)."""

    def collect(self) -> list[pytest.Item | pytest.Collector]:
        return []


class ContractItem(pytest.Item):
    """One contract check as a pytest item."""

    def __init__(self, *, check: Check, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check

    def _profile(self) -> ServerProfile:
        stash = self.config.stash
        if _PROFILE not in stash:
            stash[_PROFILE] = asyncio.run(_probe(stash[_CONFIG], stash[_RUN_ID]))
        profile = stash[_PROFILE]
        if isinstance(profile, str):
            raise ContractCheckFailedError(
                CheckResult(self.check, Outcome.FAIL, f"server unreachable: {profile}")
            )
        return profile

    def runtest(self) -> None:
        """Run the check in a fresh event loop; skip or fail as it concluded."""
        stash = self.config.stash
        result = asyncio.run(_run(stash[_CONFIG], self._profile(), stash[_RUN_ID], self.check))
        if result.outcome is Outcome.SKIP:
            # Reported at the item (the check's title), not at this line.
            raise pytest.skip.Exception(result.message, _use_item_location=True)
        if result.outcome is Outcome.FAIL:
            raise ContractCheckFailedError(result)

    def repr_failure(
        self,
        excinfo: pytest.ExceptionInfo[BaseException],
        style: Any = None,
    ) -> str:
        """The check's title and its failure message, without a Python traceback."""
        if isinstance(excinfo.value, ContractCheckFailedError):
            return f"{self.check.title}\n{excinfo.value.result.message}"
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[str, int, str]:
        """Where the check is reported: its source, and its protocol title."""
        code = self.check.function.__code__
        return (code.co_filename, code.co_firstlineno - 1, self.check.title)


async def _probe(config: ContractConfig, run_id: str) -> ServerProfile | str:
    try:
        async with ContractSession(config, run_id=run_id) as session:
            return session.profile
    except ServerUnreachableError as exc:
        return str(exc)


async def _run(
    config: ContractConfig, profile: ServerProfile, run_id: str, check: Check
) -> CheckResult:
    async with ContractSession(config, profile=profile, run_id=run_id) as session:
        return await session.run(check)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Add one item per check when ``--intraday-url`` is given (before ``-k`` selects)."""
    contract = _contract_config(config)
    if contract is None:
        return
    config.stash[_CONFIG] = contract
    config.stash[_RUN_ID] = secrets.token_hex(3)
    suite = _Suite.from_parent(session, name="intraday-contract", nodeid="intraday-contract")
    added = [
        ContractItem.from_parent(suite, name=check.slug, check=check) for check in all_checks()
    ]
    items.extend(added)
    # Announce them as collected, so that "collected N items" and the selection counts add up.
    report = pytest.CollectReport(suite.nodeid, "passed", None, list(added))
    config.hook.pytest_collectreport(report=report)
