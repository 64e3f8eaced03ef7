"""Who is at work: agents of one department checking in, taking breaks, leaving.

Each agent is off, present or on break. An agent whose shift is due checks in
within a few ticks (late after :data:`LATE_AFTER_TICKS`), takes the odd
break, and eventually checks out; after some ticks off, the next shift is
due. A check-out only ever follows a check-in of the same agent.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Final

from client_sdk.protocol import format_timestamp

from ._reports import scope_fields
from ._world import Agent, Department

__all__ = ["LATE_AFTER_TICKS", "CheckEvent", "DepartmentAttendance"]

LATE_AFTER_TICKS: Final = 3
_CHECK_IN_CHANCE: Final = 0.35
_BREAK_CHANCE: Final = 0.03
_BACK_FROM_BREAK_CHANCE: Final = 0.25
_CHECK_OUT_CHANCE: Final = 0.01
_OFF_TICKS: Final = (20, 90)
_SCHEDULED_AT_START: Final = 0.8


class _Status(Enum):
    OFF = "off"
    PRESENT = "present"
    BREAK = "break"


@dataclass(slots=True)
class _AgentState:
    agent: Agent
    status: _Status = _Status.OFF
    due_since: int | None = 0
    """The tick the agent's shift became due; ``None`` while off shift."""
    off_until: int = 0
    late: bool = False


@dataclass(frozen=True, slots=True)
class CheckEvent:
    """An agent checked in (``checked_in``) or out."""

    agent: Agent
    checked_in: bool


class DepartmentAttendance:
    """The agents of one department and their presence."""

    def __init__(self, department: Department, rng: random.Random) -> None:
        self.department = department
        self._agents = [_AgentState(agent) for agent in department.agents]
        for state in self._agents:
            if rng.random() >= _SCHEDULED_AT_START:
                state.due_since = None
                state.off_until = rng.randint(5, 60)

    def advance(self, rng: random.Random, tick: int) -> list[CheckEvent]:
        """Move every agent on by one tick; return the check-ins and check-outs."""
        events: list[CheckEvent] = []
        for state in self._agents:
            if state.status is _Status.OFF:
                if state.due_since is None:
                    if tick >= state.off_until:
                        state.due_since = tick
                elif rng.random() < _CHECK_IN_CHANCE:
                    state.status = _Status.PRESENT
                    state.late = tick - state.due_since > LATE_AFTER_TICKS
                    events.append(CheckEvent(state.agent, checked_in=True))
            elif state.status is _Status.BREAK:
                if rng.random() < _BACK_FROM_BREAK_CHANCE:
                    state.status = _Status.PRESENT
            elif rng.random() < _CHECK_OUT_CHANCE:
                state.status = _Status.OFF
                state.due_since = None
                state.late = False
                state.off_until = tick + rng.randint(*_OFF_TICKS)
                events.append(CheckEvent(state.agent, checked_in=False))
            elif rng.random() < _BREAK_CHANCE:
                state.status = _Status.BREAK
        return events

    @property
    def adherence(self) -> float:
        """Percent of the agents due now who are at work and not on break."""
        due = [state for state in self._agents if state.due_since is not None]
        if not due:
            return 100.0
        working = sum(1 for state in due if state.status is _Status.PRESENT)
        return round(100.0 * working / len(due), 1)

    def update_payload(self, now: datetime) -> dict[str, Any]:
        """The department's ``attendance:update``."""
        due = [state for state in self._agents if state.due_since is not None]
        present = [state for state in due if state.status is not _Status.OFF]
        return {
            **self._scope(now),
            "scheduled": len(due),
            "present": len(present),
            "absent": len(due) - len(present),
            "late": sum(1 for state in present if state.late),
            "on_break": sum(1 for state in present if state.status is _Status.BREAK),
            "adherence": self.adherence,
        }

    def check_payload(self, event: CheckEvent, now: datetime) -> dict[str, Any]:
        """An ``attendance:checkin`` or ``attendance:checkout`` of one agent."""
        return {
            **self._scope(now),
            "employee_id": event.agent.agent_id,
            "employee_name": event.agent.name,
            "check_time": format_timestamp(now),
        }

    def _scope(self, now: datetime) -> dict[str, Any]:
        return scope_fields(
            self.department.organization_id, self.department.department_id, None, now
        )
