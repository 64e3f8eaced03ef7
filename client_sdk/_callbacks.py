"""Application callbacks in the seed console's style: ``client.on(on_kpi_update=...)``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypedDict

from ._messages import Message
from .exceptions import IntradayError
from .gaps import Gap
from .protocol import (
    AlertPayload,
    AttendanceCheckPayload,
    AttendancePayload,
    BacklogPayload,
    BacklogSnapshotPayload,
    KpiPayload,
    MetricAlertPayload,
    ServerEvent,
    SystemPayload,
)

__all__ = ["HANDLER_EVENTS", "Handlers", "call_handler"]

Callback = Callable[..., Any]
"""A handler: a plain function or a coroutine function."""


class Handlers(TypedDict, total=False):
    """The handlers ``IntradayClient.on`` accepts; each may be sync or async."""

    on_connect: Callable[[], Any]
    on_disconnect: Callable[[str], Any]
    on_reconnect: Callable[[], Any]
    on_error: Callable[[IntradayError], Any]
    on_gap: Callable[[Gap], Any]
    on_kpi_update: Callable[[Message[KpiPayload]], Any]
    on_kpi_computed: Callable[[Message[KpiPayload]], Any]
    on_kpi_alert: Callable[[Message[MetricAlertPayload]], Any]
    on_backlog_update: Callable[[Message[BacklogPayload]], Any]
    on_backlog_snapshot: Callable[[Message[BacklogSnapshotPayload]], Any]
    on_backlog_alert: Callable[[Message[MetricAlertPayload]], Any]
    on_attendance_update: Callable[[Message[AttendancePayload]], Any]
    on_attendance_checkin: Callable[[Message[AttendanceCheckPayload]], Any]
    on_attendance_checkout: Callable[[Message[AttendanceCheckPayload]], Any]
    on_attendance_alert: Callable[[Message[MetricAlertPayload]], Any]
    on_alert_triggered: Callable[[Message[AlertPayload]], Any]
    on_alert_acknowledged: Callable[[Message[AlertPayload]], Any]
    on_alert_resolved: Callable[[Message[AlertPayload]], Any]
    on_alert_escalated: Callable[[Message[AlertPayload]], Any]
    on_system_notification: Callable[[Message[SystemPayload]], Any]
    on_system_broadcast: Callable[[Message[SystemPayload]], Any]
    on_system_maintenance: Callable[[Message[SystemPayload]], Any]


HANDLER_EVENTS: dict[str, ServerEvent] = {
    "on_" + event.value.replace(":", "_"): event for event in ServerEvent
}
"""Handler name to server event (``on_kpi_update`` -> ``kpi:update``)."""

LIFECYCLE_HANDLERS = frozenset(
    {"on_connect", "on_disconnect", "on_reconnect", "on_error", "on_gap"}
)


async def call_handler(handler: Callback, *args: Any) -> None:
    """Run a sync or async handler (exceptions propagate to the caller)."""
    result = handler(*args)
    # Most handlers are plain functions returning None: skip inspect for them.
    if result is not None and inspect.isawaitable(result):
        await result


def check_names(names: dict[str, Any]) -> None:
    """Reject handler names that do not exist (a typo would silently never fire)."""
    unknown = set(names) - LIFECYCLE_HANDLERS - set(HANDLER_EVENTS)
    if unknown:
        raise TypeError(f"unknown handler(s): {', '.join(sorted(unknown))}")
