"""The simulated world's fixed shape: organizations, departments, queues, agents.

The shape does not change while the simulator runs. Departments and queues
come from a small catalogue, chosen by the organization's position so that
``describe()`` is the same for every seed; agent names come from the seeded
random generator.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from client_sdk.protocol import is_identifier

__all__ = [
    "SIM_SECONDS_PER_TICK",
    "Agent",
    "Department",
    "Organization",
    "QueueProfile",
    "build_world",
]

SIM_SECONDS_PER_TICK: Final = 60.0
"""Simulated seconds per tick: the feed is a time-lapse (one tick, one minute of a day).

Durations in payloads (ages, handle times, projected clear times) are in
simulated seconds, counted from the clock's current time.
"""

PLANNED_OCCUPANCY: Final = 0.75
"""The occupancy the base staffing plan aims at (work divided by available agents)."""

PLANNED_SHRINKAGE: Final = 0.1
"""The share of scheduled agents the plan expects to be unavailable (breaks, meetings)."""


@dataclass(frozen=True, slots=True)
class QueueProfile:
    """A queue's name and its normal load."""

    name: str
    rate_per_minute: float
    """Contacts arriving per simulated minute on a normal day."""
    handle_seconds: float
    """Normal average handle time."""

    @property
    def planned_staff(self) -> float:
        """Agents the plan schedules for the normal load."""
        workload = self.rate_per_minute * self.handle_seconds / SIM_SECONDS_PER_TICK
        return workload / PLANNED_OCCUPANCY / (1 - PLANNED_SHRINKAGE)


@dataclass(frozen=True, slots=True)
class Agent:
    """One employee who checks in and out."""

    agent_id: str
    name: str


@dataclass(frozen=True, slots=True)
class Department:
    """A department of an organization: its queues, agents and supervisor."""

    organization_id: str
    department_id: str
    queues: tuple[QueueProfile, ...]
    agents: tuple[Agent, ...]
    supervisor_id: str


@dataclass(frozen=True, slots=True)
class Organization:
    """One tenant of the simulated service."""

    organization_id: str
    departments: tuple[Department, ...]


_CATALOGUE: Final[tuple[tuple[str, tuple[QueueProfile, ...]], ...]] = (
    (
        "customer_care",
        (
            QueueProfile("support", 1.6, 300.0),
            QueueProfile("billing", 1.0, 360.0),
            QueueProfile("returns", 0.8, 240.0),
        ),
    ),
    ("sales", (QueueProfile("inbound_sales", 1.2, 420.0), QueueProfile("renewals", 0.6, 480.0))),
    ("technical", (QueueProfile("tier1", 1.4, 420.0), QueueProfile("tier2", 0.5, 900.0))),
    (
        "back_office",
        (
            QueueProfile("claims", 0.7, 600.0),
            QueueProfile("orders", 1.4, 240.0),
            QueueProfile("email", 1.0, 300.0),
        ),
    ),
)

_FIRST_NAMES: Final = (
    "Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas",
    "Kemi", "Liam", "Maya", "Nils", "Olga", "Priya", "Quinn", "Rosa", "Sami", "Tess",
)  # fmt: skip
_LAST_NAMES: Final = (
    "Almeida", "Brooks", "Chen", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad",
    "Ito", "Jensen", "Kowalski", "Lopez", "Moreau", "Novak", "Okafor", "Patel",
)  # fmt: skip

_MIN_AGENTS: Final = 6
_MAX_AGENTS: Final = 24


def build_world(organizations: Sequence[str], rng: random.Random) -> tuple[Organization, ...]:
    """Lay out each organization with two departments from the catalogue.

    Raises:
        ValueError: no organization, a duplicate, or a name that is not a
            protocol identifier.
    """
    if not organizations:
        raise ValueError("organizations: at least one is required")
    if len(set(organizations)) != len(organizations):
        raise ValueError(f"organizations: duplicates in {list(organizations)}")
    for name in organizations:
        if not is_identifier(name):
            raise ValueError(f"organizations: {name!r} is not a protocol identifier")
    return tuple(
        Organization(org, tuple(_department(org, 2 * index + k, rng) for k in range(2)))
        for index, org in enumerate(organizations)
    )


def _department(organization_id: str, slot: int, rng: random.Random) -> Department:
    department_id, queues = _CATALOGUE[slot % len(_CATALOGUE)]
    headcount = round(sum(queue.planned_staff for queue in queues))
    headcount = max(_MIN_AGENTS, min(_MAX_AGENTS, headcount))
    agents = tuple(
        Agent(
            agent_id=f"emp-{slot + 1:02d}{number:02d}",
            name=f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}",
        )
        for number in range(1, headcount + 1)
    )
    return Department(
        organization_id=organization_id,
        department_id=department_id,
        queues=queues,
        agents=agents,
        supervisor_id=f"supervisor.{department_id}",
    )
