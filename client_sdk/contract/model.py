"""What a contract check is, what it can conclude, and the registry of checks.

A check is an ``async`` function of a :class:`~client_sdk.contract.CheckContext`
registered with :func:`check` under one protocol :class:`Section`. It passes by
returning, fails by raising :class:`CheckFailure` (saying what was sent and
what came back) and is skipped by raising :class:`CheckSkipped`. What it
needs from the run (an admin token, two organizations, ``--destructive``, a
server capability) is declared in :class:`Needs`, so the runner can skip it
with a reason before it opens a single socket.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import TYPE_CHECKING

from .failures import CheckFailure, CheckSkipped, clip, show

if TYPE_CHECKING:
    from ._context import CheckContext

__all__ = [
    "Check",
    "CheckFailure",
    "CheckFunction",
    "CheckResult",
    "CheckSkipped",
    "Needs",
    "Outcome",
    "Section",
    "add_check",
    "check",
    "clip",
    "registered_checks",
    "show",
]


class Section(Enum):
    """A part of the protocol; every check belongs to one."""

    TRANSPORT = ("§1", "transport")
    BRIDGE = ("§1", "plain-WebSocket bridge")
    IDENTIFIERS = ("§2", "identifiers")
    AUTHENTICATION = ("§3", "authentication")
    SUBSCRIPTIONS = ("§4", "subscriptions")
    DELIVERY = ("§4", "delivery rule")
    ENVELOPES = ("§5", "envelopes and payloads")
    ACKS = ("§5", "acks")
    CAPABILITIES = ("§5-6", "capabilities")
    PING = ("§7", "client:ping")
    ERRORS = ("§8", "errors")
    LIMITS = ("§8", "limits")
    HTTP_API = ("§9", "HTTP API")

    @property
    def number(self) -> str:
        """The protocol section number, ``§4``."""
        return self.value[0]

    @property
    def title(self) -> str:
        """``§4 delivery rule``."""
        return f"{self.value[0]} {self.value[1]}"


class Outcome(StrEnum):
    """How a check ended."""

    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Needs:
    """What a check needs from the run before it can say anything.

    Attributes:
        admin: the management API (to publish or inspect).
        organizations: how many distinct organizations (2 for isolation checks).
        destructive: pushes a limit; runs only with ``--destructive``.
        slow: waits for a server timer; skipped with ``--quick``.
        capability: a capability the server must advertise.
        auth: authenticates generated users (skipped when the suite cannot).
    """

    admin: bool = False
    organizations: int = 1
    destructive: bool = False
    slow: bool = False
    capability: str | None = None
    auth: bool = True


CheckFunction = Callable[["CheckContext"], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Check:
    """One registered check.

    Attributes:
        section: the protocol section it verifies.
        name: what it verifies, short (``queue filter``).
        function: the check itself.
        needs: what it needs to run.
    """

    section: Section
    name: str
    function: CheckFunction
    needs: Needs = field(default_factory=Needs)

    @property
    def title(self) -> str:
        """``§4 delivery rule: queue filter``: how reports name the check."""
        return f"{self.section.title}: {self.name}"

    @property
    def slug(self) -> str:
        """An identifier for selection (``s4_delivery_rule_queue_filter``)."""
        text = f"s{self.section.number.lstrip('§')}_{self.section.value[1]}_{self.name}"
        return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")

    def matches(self, pattern: str) -> bool:
        """Whether ``pattern`` occurs (case-insensitively) in the title or the slug."""
        wanted = pattern.lower()
        return wanted in self.title.lower() or wanted in self.slug


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one check, with its explanation and duration in seconds."""

    check: Check
    outcome: Outcome
    message: str = ""
    duration: float = 0.0


_REGISTRY: list[Check] = []


def check(
    section: Section,
    name: str,
    *,
    admin: bool = False,
    organizations: int = 1,
    destructive: bool = False,
    slow: bool = False,
    capability: str | None = None,
    auth: bool = True,
) -> Callable[[CheckFunction], CheckFunction]:
    """Register the decorated coroutine function as a check of ``section``."""
    needs = Needs(admin, organizations, destructive, slow, capability, auth)

    def register(function: CheckFunction) -> CheckFunction:
        add_check(Check(section, name, function, needs))
        return function

    return register


def add_check(new: Check) -> None:
    """Register a check built by hand (one per event, say).

    Raises:
        ValueError: a check with the same title is already registered.
    """
    if any(existing.title == new.title for existing in _REGISTRY):
        raise ValueError(f"duplicate check: {new.title}")
    _REGISTRY.append(new)


def registered_checks() -> tuple[Check, ...]:
    """Every registered check, in protocol order (stable within a section)."""
    order = {section: i for i, section in enumerate(Section)}
    return tuple(sorted(_REGISTRY, key=lambda c: order[c.section]))
