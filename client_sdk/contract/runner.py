"""Running checks: one probe of the server, then each check in its own context.

Checks run one after another (they share the server and some share an
organization's rooms), each within a time budget, each with its sockets
closed afterwards whatever happened. A check that crashes is a failure that
says so: the suite never stops half-way.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import httpx

from ._context import (
    CheckContext,
    ServerProfile,
    ServerUnreachableError,
    probe_server,
    second_organization,
)
from .checks import all_checks
from .config import ContractConfig
from .model import Check, CheckFailure, CheckResult, CheckSkipped, Outcome, Section

__all__ = ["ContractReport", "ContractSession", "run_contract", "select_checks"]

CHECK_BUDGET = 30.0
"""Seconds a check may take, beyond the waits it is configured for."""


def select_checks(
    patterns: Sequence[str] = (), checks: Iterable[Check] | None = None
) -> tuple[Check, ...]:
    """The checks whose title or slug contains any of ``patterns`` (all if none)."""
    pool = tuple(all_checks() if checks is None else checks)
    if not patterns:
        return pool
    return tuple(c for c in pool if any(c.matches(p) for p in patterns))


@dataclass(frozen=True, slots=True)
class ContractReport:
    """The results of a run.

    Attributes:
        config: the options the run used.
        results: one per check, in the order run.
        unreachable: why nothing could be checked, if the server did not answer.
    """

    config: ContractConfig
    results: tuple[CheckResult, ...]
    unreachable: str | None = None

    @property
    def isolation_unchecked(self) -> str | None:
        """Why organization isolation was not checked in this run, if it was not."""
        for result in self.results:
            if result.outcome is Outcome.SKIP and result.check.needs.organizations > 1:
                return result.message
        return None

    @property
    def failed(self) -> bool:
        """Whether any check failed (or the server was unreachable)."""
        return self.unreachable is not None or any(r.outcome is Outcome.FAIL for r in self.results)

    def counts(self) -> dict[Section, Counter[Outcome]]:
        """Pass, fail and skip counts per section, in protocol order."""
        table: dict[Section, Counter[Outcome]] = {}
        for result in self.results:
            table.setdefault(result.check.section, Counter())[result.outcome] += 1
        order = list(Section)
        return dict(sorted(table.items(), key=lambda item: order.index(item[0])))

    def totals(self) -> Counter[Outcome]:
        """Pass, fail and skip counts over the whole run."""
        return Counter(r.outcome for r in self.results)

    def result(self, name: str) -> CheckResult:
        """The result of the check with this title or slug.

        Raises:
            KeyError: no such check in this run.
        """
        for result in self.results:
            if name in (result.check.title, result.check.slug):
                return result
        raise KeyError(name)

    def with_outcome(self, outcome: Outcome) -> list[CheckResult]:
        """The results with ``outcome``."""
        return [r for r in self.results if r.outcome is outcome]


class ContractSession:
    """One connection to the server under test: its profile and an HTTP client.

    Use with ``async with``; :meth:`run` runs one check. ``profile`` skips the
    probe (the pytest plugin probes once and reuses it across event loops).

    Raises:
        ServerUnreachableError: on entry, when the server does not answer.
    """

    def __init__(
        self, config: ContractConfig, *, profile: ServerProfile | None = None, run_id: str = ""
    ) -> None:
        self.config = config
        self.run_id = run_id or secrets.token_hex(3)
        self._profile = profile
        self._http: httpx.AsyncClient | None = None

    @property
    def profile(self) -> ServerProfile:
        """What the probe learnt."""
        assert self._profile is not None, "use the session with 'async with'"
        return self._profile

    async def __aenter__(self) -> Self:
        self._http = httpx.AsyncClient(
            base_url=self.config.url, timeout=self.config.request_timeout
        )
        try:
            if self._profile is None:
                self._profile = await probe_server(self.config, self._http, self.run_id)
            if len(self.config.organizations) < 2 and self._profile.auth_problem is None:
                generated = await second_organization(self.config, self.run_id)
                if generated is not None:
                    organizations = (*self.config.organizations, generated)
                    self.config = dataclasses.replace(self.config, organizations=organizations)
        except BaseException:
            await self._http.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._http is not None:
            await self._http.aclose()

    def skip_reason(self, check: Check) -> str | None:
        """Why ``check`` cannot run with these options against this server, if it cannot."""
        needs, config, profile = check.needs, self.config, self.profile
        if needs.destructive and not config.destructive:
            return "pushes a server limit: runs only with --destructive"
        if needs.slow and config.quick:
            return "waits for a server timer: skipped with --quick"
        if needs.organizations > len(config.organizations):
            return (
                f"needs {needs.organizations} organizations: the server refused a generated "
                "second one; give another --org (with its token)"
            )
        if needs.auth and profile.auth_problem is not None:
            return f"cannot authenticate generated users: {profile.auth_problem}"
        if needs.admin and profile.admin_problem is not None:
            return f"needs the management API: {profile.admin_problem}"
        if needs.capability is not None and needs.capability not in profile.capabilities:
            advertised = sorted(profile.capabilities)
            return (
                f"the server does not advertise {needs.capability!r} (it advertises {advertised})"
            )
        return None

    def budget(self, check: Check) -> float:
        """Seconds ``check`` may run."""
        extra = max(self.config.auth_timeout_wait, 10.0) if check.needs.slow else 0.0
        return CHECK_BUDGET + extra + 4 * self.config.event_timeout

    async def run(self, check: Check) -> CheckResult:
        """Run one check and close everything it opened; never raises."""
        reason = self.skip_reason(check)
        if reason is not None:
            return CheckResult(check, Outcome.SKIP, reason)
        assert self._http is not None
        context = CheckContext(self.config, self.profile, self._http, self.run_id)
        started = time.monotonic()
        budget = self.budget(check)
        outcome, message = Outcome.PASS, ""
        try:
            async with asyncio.timeout(budget) as deadline:
                await check.function(context)
        except CheckFailure as failure:
            outcome, message = Outcome.FAIL, str(failure)
        except CheckSkipped as skipped:
            outcome, message = Outcome.SKIP, skipped.reason
        except TimeoutError as exc:
            outcome = Outcome.FAIL
            if deadline.expired():
                message = f"the check did not finish within {budget:g} s"
            else:
                message = f"the check crashed: {type(exc).__name__}: {exc}"
        except Exception as exc:
            outcome, message = Outcome.FAIL, f"the check crashed: {type(exc).__name__}: {exc}"
        finally:
            await context.aclose()
        return CheckResult(check, outcome, message, time.monotonic() - started)


async def run_contract(
    config: ContractConfig,
    *,
    select: Sequence[str] = (),
    checks: Iterable[Check] | None = None,
    on_result: Callable[[CheckResult], None] | None = None,
) -> ContractReport:
    """Run the selected checks against the server of ``config``.

    Args:
        config: where the server is and what the suite may do.
        select: substrings of check titles or slugs to run (all checks if empty).
        checks: the pool to select from (every registered check by default).
        on_result: called after each check, for progress output.
    """
    chosen = select_checks(select, checks)
    try:
        async with ContractSession(config) as session:
            results: list[CheckResult] = []
            for check in chosen:
                result = await session.run(check)
                results.append(result)
                if on_result is not None:
                    on_result(result)
    except ServerUnreachableError as exc:
        failed = tuple(CheckResult(c, Outcome.FAIL, f"server unreachable: {exc}") for c in chosen)
        return ContractReport(config, failed, unreachable=str(exc))
    # The session's config: it may hold a generated second organization.
    return ContractReport(session.config, tuple(results))
