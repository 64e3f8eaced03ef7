"""What a handler receives: the envelope as sent, the payload parsed into its model."""

from client_sdk import Message
from client_sdk.protocol import KpiPayload, Priority

wire = {  # the one argument of a kpi:update event, as it travels
    "id": "3f2c0a9e8b7d4c6e9a1b2c3d4e5f6a7b",
    "event": "kpi:update",
    "channel": "kpi",
    "timestamp": "2026-11-25T10:30:00.000Z",
    "priority": "medium",
    "requires_ack": False,
    "target": {"organization_id": "acme", "department_id": None, "queue_name": "support"},
    "data": {
        "organization_id": "acme",
        "queue_name": "support",
        "timestamp": "2026-11-25T10:30:00Z",
        "health_score": 90,
        "utilization": {"current_utilization": 85},
        "forecast_accuracy": 97.5,  # a field this SDK does not know
    },
}

message = Message.from_wire("kpi:update", wire)
assert message.id == "3f2c0a9e8b7d4c6e9a1b2c3d4e5f6a7b"
assert message.priority is Priority.MEDIUM
assert message.target.queue_name == "support"
assert isinstance(message.payload, KpiPayload)
assert message.payload.utilization is not None
print(message.event, message.payload.health_score, message.payload.utilization.current_utilization)
assert message.payload.model_extra == {"forecast_accuracy": 97.5}  # unknown fields are kept
