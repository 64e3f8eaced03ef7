"""One queue's moving parts: arrivals, staffing, handling and the waiting items.

Each tick contacts arrive (a Poisson draw around a load that reverts to normal,
with the occasional surge), agents handle what their capacity allows, highest
priority and oldest first, and what is left waits and ages. Utilization,
occupancy and service level follow from what was handled; staffing drifts
around the plan and leans in when the backlog grows, so a surge builds a
backlog that later clears.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Final

from ._world import PLANNED_SHRINKAGE, SIM_SECONDS_PER_TICK, QueueProfile

__all__ = [
    "ITEM_PRIORITIES",
    "SERVICE_LEVEL_TARGET",
    "SERVICE_LEVEL_THRESHOLD_SECONDS",
    "SLA_SECONDS",
    "QueueState",
    "WaitingItem",
    "clamp",
    "revert",
]

ITEM_PRIORITIES: Final = ("high", "medium", "low")
_PRIORITY_WEIGHTS: Final = (0.15, 0.55, 0.30)
_PRIORITY_RANK: Final = {name: rank for rank, name in enumerate(ITEM_PRIORITIES)}
SLA_SECONDS: Final = {"high": 600.0, "medium": 1200.0, "low": 2400.0}
"""How long an item of each priority may wait before it breaches its SLA."""

SERVICE_LEVEL_TARGET: Final = 80.0
SERVICE_LEVEL_THRESHOLD_SECONDS: Final = 180.0
_SERVICE_LEVEL_WINDOW_TICKS: Final = 30
_SURGE_CHANCE: Final = 0.012
_ABANDON_AFTER_SECONDS: Final = 2400.0
_ABANDON_CHANCE: Final = 0.3
_SMOOTHING: Final = 0.2


def clamp(value: float, low: float, high: float) -> float:
    """``value`` bounded to ``[low, high]``."""
    return max(low, min(high, value))


def revert(rng: random.Random, value: float, mean: float, pull: float, noise: float) -> float:
    """One step of a mean-reverting random walk (discrete Ornstein-Uhlenbeck)."""
    return value + pull * (mean - value) + rng.gauss(0.0, noise)


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


@dataclass(slots=True)
class WaitingItem:
    """One contact waiting in the backlog; ``age`` in simulated seconds."""

    item_id: str
    priority: str
    age: float

    @property
    def breached(self) -> bool:
        """Whether it has waited longer than its priority's SLA allows."""
        return self.age > SLA_SECONDS[self.priority]


@dataclass(slots=True)
class QueueState:
    """The state of one queue, advanced one tick at a time by :meth:`advance`."""

    organization_id: str
    department_id: str
    profile: QueueProfile
    load: float = 1.0
    surge: float = 1.0
    surge_ticks: int = 0
    handle_seconds: float = 0.0
    staff: float = 0.0
    shrinkage: float = PLANNED_SHRINKAGE
    utilization: float = 0.0
    occupancy: float = 0.0
    arrival_rate: float = 0.0
    """Smoothed arrivals per tick, what a forecast would call the current volume."""
    offered: int = 0
    handled: int = 0
    abandoned: int = 0
    items: list[WaitingItem] = field(default_factory=list)
    _carry: float = 0.0
    _next_item: int = 1
    _window: deque[tuple[int, int]] = field(default_factory=deque)
    """``(handled, handled within the threshold)`` of each of the last ticks."""
    _window_handled: int = 0
    _window_within: int = 0

    def __post_init__(self) -> None:
        self.handle_seconds = self.profile.handle_seconds
        self.staff = self.profile.planned_staff
        self.arrival_rate = self.profile.rate_per_minute

    @property
    def queue_name(self) -> str:
        """The queue's protocol identifier."""
        return self.profile.name

    @property
    def available(self) -> float:
        """Agents actually taking contacts (scheduled minus shrinkage)."""
        return self.staff * (1 - self.shrinkage)

    @property
    def capacity_per_tick(self) -> float:
        """Contacts the available agents can handle in one tick."""
        return self.available * SIM_SECONDS_PER_TICK / self.handle_seconds

    @property
    def required_staff(self) -> float:
        """Agents the current volume needs at the planned occupancy and shrinkage."""
        return (
            self.profile.planned_staff
            * (self.arrival_rate / self.profile.rate_per_minute)
            * (self.handle_seconds / self.profile.handle_seconds)
        )

    @property
    def service_level(self) -> float:
        """Percent of the contacts handled recently that waited at most the threshold.

        With none handled yet, 100 unless an item already waits past the threshold.
        """
        if self._window_handled == 0:
            return 0.0 if self.oldest_age > SERVICE_LEVEL_THRESHOLD_SECONDS else 100.0
        return 100.0 * self._window_within / self._window_handled

    @property
    def oldest_age(self) -> float:
        """Age of the longest-waiting item, 0 when nothing waits."""
        return max((item.age for item in self.items), default=0.0)

    def waiting_in_order(self) -> list[WaitingItem]:
        """The waiting items in handling order: highest priority first, then oldest."""
        return sorted(self.items, key=lambda item: (_PRIORITY_RANK[item.priority], -item.age))

    def advance(self, rng: random.Random) -> None:
        """Move the queue on by one tick."""
        self._drift(rng)
        arrivals = _poisson(rng, self.profile.rate_per_minute * self.load * self.surge)
        for item in self.items:
            item.age += SIM_SECONDS_PER_TICK
        for _ in range(arrivals):
            priority = rng.choices(ITEM_PRIORITIES, _PRIORITY_WEIGHTS)[0]
            item_id = f"{self.queue_name}-{self._next_item:06d}"
            self._next_item += 1
            self.items.append(WaitingItem(item_id, priority, rng.uniform(0, SIM_SECONDS_PER_TICK)))
        self.offered += arrivals
        self.arrival_rate += 0.2 * (arrivals - self.arrival_rate)
        self._handle()
        self._abandon(rng)

    def _drift(self, rng: random.Random) -> None:
        if self.surge_ticks > 0:
            self.surge_ticks -= 1
            if self.surge_ticks == 0:
                self.surge = 1.0
        elif rng.random() < _SURGE_CHANCE:
            self.surge = rng.uniform(1.4, 1.9)
            self.surge_ticks = rng.randint(10, 30)
        self.load = clamp(revert(rng, self.load, 1.0, 0.15, 0.05), 0.6, 1.5)
        base_aht = self.profile.handle_seconds
        self.handle_seconds = clamp(
            revert(rng, self.handle_seconds, base_aht, 0.1, base_aht * 0.02),
            base_aht * 0.5,
            base_aht * 2,
        )
        plan = self.profile.planned_staff
        # The supervisor pulls agents in from other work as the backlog grows.
        wanted = plan + min(len(self.items) / 6, plan * 0.4)
        self.staff = clamp(revert(rng, self.staff, wanted, 0.2, 0.15), 1.0, plan * 2)
        self.shrinkage = clamp(revert(rng, self.shrinkage, PLANNED_SHRINKAGE, 0.2, 0.01), 0.02, 0.3)

    def _handle(self) -> None:
        capacity = self.capacity_per_tick + self._carry
        count = min(int(capacity), len(self.items))
        # Idle capacity is not banked beyond the contact in progress.
        self._carry = min(capacity - count, 1.0)
        ordered = self.waiting_in_order()
        done, self.items = ordered[:count], ordered[count:]
        within = sum(1 for item in done if item.age <= SERVICE_LEVEL_THRESHOLD_SECONDS)
        self._window.append((count, within))
        self._window_handled += count
        self._window_within += within
        if len(self._window) > _SERVICE_LEVEL_WINDOW_TICKS:
            old_count, old_within = self._window.popleft()
            self._window_handled -= old_count
            self._window_within -= old_within
        self.handled += count
        busy = count * self.handle_seconds
        occupancy = 100.0 * busy / (self.available * SIM_SECONDS_PER_TICK)
        utilization = 100.0 * busy / (self.staff * SIM_SECONDS_PER_TICK)
        self.occupancy += _SMOOTHING * (clamp(occupancy, 0, 100) - self.occupancy)
        self.utilization += _SMOOTHING * (clamp(utilization, 0, 100) - self.utilization)

    def _abandon(self, rng: random.Random) -> None:
        staying = [
            item
            for item in self.items
            if item.age <= _ABANDON_AFTER_SECONDS or rng.random() >= _ABANDON_CHANCE
        ]
        self.abandoned += len(self.items) - len(staying)
        self.items = staying
