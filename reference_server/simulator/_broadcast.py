"""Turn a payload into the broadcast request the server publishes."""

from __future__ import annotations

from typing import Any

from client_sdk.protocol import BroadcastRequest, BroadcastTarget, Priority, ServerEvent

__all__ = ["broadcast"]


def broadcast(
    event: ServerEvent,
    data: dict[str, Any],
    *,
    priority: Priority = Priority.MEDIUM,
    requires_ack: bool = False,
) -> BroadcastRequest:
    """A request for ``event`` whose target is the payload's own scope."""
    target = BroadcastTarget(
        organization_id=data.get("organization_id"),
        department_id=data.get("department_id"),
        queue_name=data.get("queue_name"),
    )
    return BroadcastRequest(
        event=event, data=data, target=target, priority=priority, requires_ack=requires_ack
    )
