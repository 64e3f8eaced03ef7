"""Alert rules and the life of each alert they raise.

A rule watches one metric of a scope (a queue, or a department for
attendance). When the metric crosses the rule's threshold an alert is
triggered (``alert:triggered`` plus the channel's metric alert, such as
``kpi:alert``). While nobody acknowledges it, it escalates every few ticks;
the scope's supervisor acknowledges it sooner or later; it resolves once the
metric is back past the rule's clear level (hysteresis, so it does not
flap), and the rule then rests a few ticks before it may fire again.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from client_sdk.protocol import (
    AlertStatus,
    BroadcastRequest,
    Priority,
    ServerEvent,
    Severity,
    format_timestamp,
)

from ._broadcast import broadcast
from ._reports import scope_fields

__all__ = ["RULES", "AlertBook", "Rule", "Scope"]

Scope = tuple[str, str, str | None]
"""``(organization_id, department_id, queue_name)``."""

_ACK_CHANCE: Final = 0.12
_ACK_AFTER_TICKS: Final = 2
_ESCALATE_EVERY_TICKS: Final = 5
_MAX_ESCALATION: Final = 3
_REST_TICKS: Final = 5


@dataclass(frozen=True, slots=True)
class Rule:
    """Alert when ``metric`` goes past ``threshold``; resolved past ``clear``."""

    name: str
    metric: str
    label: str
    unit: str
    metric_event: ServerEvent
    above: bool
    """True: alert when the metric is above the threshold; False: below."""
    threshold: float
    clear: float
    critical: float

    def breached(self, value: float) -> bool:
        """Whether ``value`` should trigger an alert."""
        return value > self.threshold if self.above else value < self.threshold

    def recovered(self, value: float) -> bool:
        """Whether ``value`` resolves an active alert."""
        return value <= self.clear if self.above else value >= self.clear

    def severity(self, value: float) -> Severity:
        """Critical past ``critical``, high past halfway to it, else medium."""
        sign = 1.0 if self.above else -1.0
        if sign * (value - self.critical) >= 0:
            return Severity.CRITICAL
        if sign * (value - (self.threshold + self.critical) / 2) >= 0:
            return Severity.HIGH
        return Severity.MEDIUM


RULES: Final = (
    Rule(
        "service_level_below_target", "service_level", "Service level", "%",
        ServerEvent.KPI_ALERT, above=False, threshold=80.0, clear=85.0, critical=55.0,
    ),
    Rule(
        "utilization_high", "utilization", "Utilization", "%",
        ServerEvent.KPI_ALERT, above=True, threshold=92.0, clear=85.0, critical=97.0,
    ),
    Rule(
        "backlog_oldest_item_age_high", "oldest_item_age_seconds", "Oldest backlog item age",
        " s", ServerEvent.BACKLOG_ALERT, above=True, threshold=600.0, clear=300.0,
        critical=1200.0,
    ),
    Rule(
        "adherence_low", "adherence", "Schedule adherence", "%",
        ServerEvent.ATTENDANCE_ALERT, above=False, threshold=65.0, clear=75.0, critical=45.0,
    ),
)  # fmt: skip
"""The rules every scope is checked against (those whose metric it reports)."""


@dataclass(slots=True)
class _Alert:
    alert_id: str
    rule: Rule
    scope: Scope
    severity: Severity
    value: float
    triggered_tick: int
    escalated_tick: int
    level: int = 0
    acknowledged_by: str | None = None
    acknowledged_at: str | None = None


def _priority(severity: Severity) -> Priority:
    return Priority.URGENT if severity is Severity.CRITICAL else Priority.HIGH


class AlertBook:
    """The active alerts of every scope, and the counter that names new ones."""

    def __init__(self) -> None:
        self._active: dict[tuple[str, Scope], _Alert] = {}
        self._resting_until: dict[tuple[str, Scope], int] = {}
        self._issued = 0

    @property
    def active_count(self) -> int:
        """How many alerts are triggered and not yet resolved."""
        return len(self._active)

    def evaluate(
        self,
        rng: random.Random,
        tick: int,
        now: datetime,
        scope: Scope,
        readings: Mapping[str, float],
        supervisor_id: str,
    ) -> list[BroadcastRequest]:
        """Check ``readings`` of ``scope`` against the rules; return what happened."""
        requests: list[BroadcastRequest] = []
        for rule in RULES:
            if rule.metric not in readings:
                continue
            key = (rule.name, scope)
            value = readings[rule.metric]
            alert = self._active.get(key)
            if alert is None:
                if rule.breached(value) and tick >= self._resting_until.get(key, 0):
                    requests += self._trigger(key, rule, scope, value, tick, now)
                continue
            alert.value = value
            if rule.recovered(value):
                del self._active[key]
                self._resting_until[key] = tick + _REST_TICKS
                requests.append(self._resolve(alert, now))
            elif alert.acknowledged_by is None:
                if tick - alert.triggered_tick >= _ACK_AFTER_TICKS and rng.random() < _ACK_CHANCE:
                    alert.acknowledged_by = supervisor_id
                    alert.acknowledged_at = format_timestamp(now)
                    data = self._payload(alert, AlertStatus.ACKNOWLEDGED, now)
                    data["message"] = f"Acknowledged by {supervisor_id}"
                    requests.append(broadcast(ServerEvent.ALERT_ACKNOWLEDGED, data))
                elif (
                    tick - alert.escalated_tick >= _ESCALATE_EVERY_TICKS
                    and alert.level < _MAX_ESCALATION
                ):
                    requests.append(self._escalate(alert, tick, now))
        return requests

    def _trigger(
        self,
        key: tuple[str, Scope],
        rule: Rule,
        scope: Scope,
        value: float,
        tick: int,
        now: datetime,
    ) -> list[BroadcastRequest]:
        self._issued += 1
        alert = _Alert(
            alert_id=f"alert-{scope[0]}-{self._issued:06d}",
            rule=rule,
            scope=scope,
            severity=rule.severity(value),
            value=value,
            triggered_tick=tick,
            escalated_tick=tick,
        )
        self._active[key] = alert
        priority = _priority(alert.severity)
        urgent = priority is Priority.URGENT
        data = self._payload(alert, AlertStatus.TRIGGERED, now)
        where = scope[2] or scope[1]
        side = "above" if rule.above else "below"
        data["message"] = (
            f"{rule.label} of {where} is {value:.1f}{rule.unit}, "
            f"{side} the threshold of {rule.threshold:g}{rule.unit}"
        )
        metric_alert = {
            **scope_fields(*scope, now),
            "metric": rule.metric,
            "value": value,
            "threshold": rule.threshold,
            "severity": alert.severity.value,
            "message": data["message"],
            "alert_id": alert.alert_id,
        }
        return [
            broadcast(ServerEvent.ALERT_TRIGGERED, data, priority=priority, requires_ack=urgent),
            broadcast(rule.metric_event, metric_alert, priority=priority),
        ]

    def _escalate(self, alert: _Alert, tick: int, now: datetime) -> BroadcastRequest:
        alert.level += 1
        alert.escalated_tick = tick
        alert.severity = list(Severity)[min(alert.severity.rank + 1, Severity.CRITICAL.rank)]
        data = self._payload(alert, AlertStatus.ESCALATED, now)
        minutes = tick - alert.triggered_tick
        data["message"] = f"Unacknowledged for {minutes} minutes; escalated to level {alert.level}"
        priority = _priority(alert.severity)
        return broadcast(
            ServerEvent.ALERT_ESCALATED,
            data,
            priority=priority,
            requires_ack=priority is Priority.URGENT,
        )

    def _resolve(self, alert: _Alert, now: datetime) -> BroadcastRequest:
        rule = alert.rule
        data = self._payload(alert, AlertStatus.RESOLVED, now)
        data["resolution"] = (
            f"{rule.label} back to {alert.value:.1f}{rule.unit} "
            f"(clear level {rule.clear:g}{rule.unit})"
        )
        data["resolved_at"] = format_timestamp(now)
        return broadcast(ServerEvent.ALERT_RESOLVED, data)

    @staticmethod
    def _payload(alert: _Alert, status: AlertStatus, now: datetime) -> dict[str, Any]:
        data: dict[str, Any] = {
            **scope_fields(*alert.scope, now),
            "alert_id": alert.alert_id,
            "rule_name": alert.rule.name,
            "severity": alert.severity.value,
            "status": status.value,
            "metric": alert.rule.metric,
            "value": alert.value,
            "threshold": alert.rule.threshold,
            "escalation_level": alert.level,
        }
        if alert.acknowledged_by is not None:
            data["acknowledged_by"] = alert.acknowledged_by
            data["acknowledged_at"] = alert.acknowledged_at
        return data
