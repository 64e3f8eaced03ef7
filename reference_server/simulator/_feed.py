"""The driver: one tick of the whole simulated world, and the loop that publishes it.

:meth:`IntradaySimulator.step` is pure apart from the seeded random generator
and the injected clock: it advances every queue and department by one tick
and returns the broadcast requests, publishing nothing. :meth:`run` is the
loop the server starts in the background.

Per tick, with the two default organizations (ten queues, four departments):
a ``kpi:update`` and a ``backlog:update`` per queue and an
``attendance:update`` per department (24), plus staggered ``kpi:computed``
(each department every :data:`KPI_COMPUTED_EVERY` ticks) and
``backlog:snapshot`` (each queue every :data:`SNAPSHOT_EVERY` ticks),
check-ins and check-outs, alert events and the rare ``system:notification``:
about 25-35 messages, more on the first ticks when the shift starts.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Final

from client_sdk.protocol import BroadcastRequest, Priority, ServerEvent, format_timestamp, utc_now

from ._alerts import AlertBook, Scope
from ._attendance import DepartmentAttendance
from ._broadcast import broadcast
from ._queue import QueueState
from ._reports import (
    Metrics,
    backlog_payload,
    department_metrics,
    kpi_payload,
    queue_metrics,
    scope_fields,
)
from ._world import Department, Organization, build_world

__all__ = ["KPI_COMPUTED_EVERY", "SNAPSHOT_EVERY", "IntradaySimulator", "Publish"]

Publish = Callable[[BroadcastRequest], Awaitable[object]]
"""Where :meth:`IntradaySimulator.run` sends each request (the server's broadcast)."""

KPI_COMPUTED_EVERY: Final = 5
SNAPSHOT_EVERY: Final = 10
_ATTENDANCE_GRACE_TICKS: Final = 20
"""The first ticks are the start of the shift: adherence is not alerted on yet."""
_NOTIFICATION_CHANCE: Final = 0.02

logger = logging.getLogger(__name__)


class _DepartmentState:
    def __init__(self, department: Department, rng: random.Random) -> None:
        self.department = department
        self.queues = [
            QueueState(department.organization_id, department.department_id, profile)
            for profile in department.queues
        ]
        self.attendance = DepartmentAttendance(department, rng)
        self.last_queue_metrics: dict[str, Metrics] = {}
        self.last_computed: Metrics | None = None


class IntradaySimulator:
    """A made-up intraday operation that produces a steady, plausible feed of events.

    Args:
        publish: called by :meth:`run` with each request, in order.
        organizations: the tenants to simulate (protocol identifiers).
        seed: makes the run reproducible (with a deterministic ``clock``).
        tick_seconds: wall-clock seconds between ticks in :meth:`run`.
        clock: the time stamped on payloads.

    Raises:
        ValueError: bad ``organizations`` or a negative ``tick_seconds``.
    """

    def __init__(
        self,
        publish: Publish,
        *,
        organizations: Sequence[str] = ("acme", "globex"),
        seed: int | None = None,
        tick_seconds: float = 1.0,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if tick_seconds < 0:
            raise ValueError(f"tick_seconds: must not be negative, got {tick_seconds}")
        self._publish = publish
        self._tick_seconds = tick_seconds
        self._clock = clock
        self._rng = random.Random(seed)
        self._world: tuple[Organization, ...] = build_world(tuple(organizations), self._rng)
        self._departments = {
            org.organization_id: [_DepartmentState(dept, self._rng) for dept in org.departments]
            for org in self._world
        }
        self._alerts = AlertBook()
        self._tick = 0

    @property
    def organizations(self) -> tuple[str, ...]:
        """The simulated organizations, in the order given."""
        return tuple(org.organization_id for org in self._world)

    @property
    def ticks(self) -> int:
        """How many ticks have been stepped."""
        return self._tick

    def describe(self) -> dict[str, Any]:
        """``{organization_id: {department_id: [queue_name, ...]}}``: what there is to watch."""
        return {
            org.organization_id: {
                dept.department_id: [queue.name for queue in dept.queues]
                for dept in org.departments
            }
            for org in self._world
        }

    def step(self) -> list[BroadcastRequest]:
        """Advance the world one tick and return its requests; publishes nothing."""
        self._tick += 1
        now = self._clock()
        requests: list[BroadcastRequest] = []
        slot = 0
        for org_id, departments in self._departments.items():
            for state in departments:
                requests += self._attendance(state, now)
                for queue in state.queues:
                    requests += self._queue(state, queue, slot, now)
                    slot += 1
                if (self._tick + slot) % KPI_COMPUTED_EVERY == 0:
                    requests.append(self._computed(state, now))
            if self._rng.random() < _NOTIFICATION_CHANCE:
                requests.append(self._notification(org_id, departments, now))
        return requests

    async def run(self, *, ticks: int | None = None) -> None:
        """Step, publish every request, sleep ``tick_seconds``; for ever or ``ticks`` times.

        Cancelling is safe: the loop stops at the publish or sleep it awaits,
        the world stays consistent, and the rest of that tick is not
        published. A publish that raises is logged and skipped; the feed
        goes on.
        """
        if ticks is not None and ticks < 0:
            raise ValueError(f"ticks: must not be negative, got {ticks}")
        done = 0
        while ticks is None or done < ticks:
            failures: list[Exception] = []
            for request in self.step():
                try:
                    await self._publish(request)
                except Exception as exc:
                    failures.append(exc)
            if failures:
                logger.warning(
                    "simulator: %d of this tick's publishes failed",
                    len(failures),
                    exc_info=failures[0],
                )
            done += 1
            if ticks is None or done < ticks:
                await asyncio.sleep(self._tick_seconds)

    def _attendance(self, state: _DepartmentState, now: datetime) -> list[BroadcastRequest]:
        attendance = state.attendance
        requests = [
            broadcast(
                ServerEvent.ATTENDANCE_CHECKIN
                if event.checked_in
                else ServerEvent.ATTENDANCE_CHECKOUT,
                attendance.check_payload(event, now),
                priority=Priority.LOW,
            )
            for event in attendance.advance(self._rng, self._tick)
        ]
        requests.append(broadcast(ServerEvent.ATTENDANCE_UPDATE, attendance.update_payload(now)))
        if self._tick > _ATTENDANCE_GRACE_TICKS:
            dept = state.department
            scope: Scope = (dept.organization_id, dept.department_id, None)
            readings = {"adherence": attendance.adherence}
            requests += self._alerts.evaluate(
                self._rng, self._tick, now, scope, readings, dept.supervisor_id
            )
        return requests

    def _queue(
        self, state: _DepartmentState, queue: QueueState, slot: int, now: datetime
    ) -> list[BroadcastRequest]:
        queue.advance(self._rng)
        metrics = queue_metrics(queue)
        previous = state.last_queue_metrics.get(queue.queue_name)
        state.last_queue_metrics[queue.queue_name] = metrics
        scope: Scope = (queue.organization_id, queue.department_id, queue.queue_name)
        requests = [
            broadcast(
                ServerEvent.KPI_UPDATE, kpi_payload(scope_fields(*scope, now), metrics, previous)
            ),
            broadcast(ServerEvent.BACKLOG_UPDATE, backlog_payload(queue, now)),
        ]
        if (self._tick + slot) % SNAPSHOT_EVERY == 0:
            snapshot = backlog_payload(queue, now, with_items=True)
            requests.append(
                broadcast(ServerEvent.BACKLOG_SNAPSHOT, snapshot, priority=Priority.LOW)
            )
        readings = {
            "service_level": metrics["service_level"],
            "utilization": metrics["utilization"],
            "oldest_item_age_seconds": round(queue.oldest_age, 1),
        }
        requests += self._alerts.evaluate(
            self._rng, self._tick, now, scope, readings, state.department.supervisor_id
        )
        return requests

    def _computed(self, state: _DepartmentState, now: datetime) -> BroadcastRequest:
        dept = state.department
        metrics = department_metrics(list(state.last_queue_metrics.values()))
        scope = scope_fields(dept.organization_id, dept.department_id, None, now)
        data = kpi_payload(scope, metrics, state.last_computed)
        state.last_computed = metrics
        return broadcast(ServerEvent.KPI_COMPUTED, data)

    def _notification(
        self, org_id: str, departments: list[_DepartmentState], now: datetime
    ) -> BroadcastRequest:
        dept = self._rng.choice(departments).department
        queue = self._rng.choice(dept.queues).name
        title, message, level = self._rng.choice(
            (
                ("Forecast updated", f"The intraday forecast for {queue} was re-run.", "info"),
                ("Schedule change", f"Two shift swaps in {dept.department_id} approved.", "info"),
                (
                    "Routing change",
                    f"Overflow from {queue} now routes to backup agents.",
                    "warning",
                ),
                ("Report ready", f"The hourly report for {dept.department_id} is ready.", "info"),
            )
        )
        data = {
            "message": message,
            "title": title,
            "level": level,
            "organization_id": org_id,
            "timestamp": format_timestamp(now),
        }
        return broadcast(ServerEvent.SYSTEM_NOTIFICATION, data, priority=Priority.LOW)
