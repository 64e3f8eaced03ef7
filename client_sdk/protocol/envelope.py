"""The envelope every server event carries (protocol section 5)."""

from __future__ import annotations

from typing import Annotated, Any, Final

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    InstanceOf,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)

from .events import EVENT_CHANNEL, Channel, ServerEvent
from .ranked import RankedStrEnum
from .rooms import Scope
from .timestamps import Timestamp

__all__ = ["Batch", "Envelope", "Priority", "build_envelope"]


class Priority(RankedStrEnum):
    """Message priority; ``medium`` when not given."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    URGENT = "urgent"


_TARGETS: dict[tuple[object, object, object], Scope] = {}
_TARGETS_KEPT: Final = 4096


def _known_target(value: Any, validate: ValidatorFunctionWrapHandler) -> Scope:
    # A stream's messages carry a handful of distinct targets, and a Scope is
    # immutable: a target validated once is reused (validating the dataclass
    # and its identifier checks was 40 % of an envelope's validation). Extra
    # keys are ignored by Scope, so the three fields are the whole key; only
    # targets that passed validation are kept, and never more than a few
    # thousand (the table starts over when full).
    if type(value) is not dict:
        return validate(value)  # type: ignore[no-any-return]
    key = (value.get("organization_id"), value.get("department_id"), value.get("queue_name"))
    known = _TARGETS.get(key)
    if known is None:
        known = validate(value)
        if len(_TARGETS) >= _TARGETS_KEPT:
            _TARGETS.clear()
        _TARGETS[key] = known
    return known


class Envelope(BaseModel):
    """One server event: metadata around the event's payload in ``data``.

    ``data`` stays a plain dict here so that an envelope with a payload this
    version does not know still parses; :func:`client_sdk.protocol.parse_payload`
    turns it into the event's typed model. ``target`` is the message's
    :class:`Scope` (no organization: every organization). ``seq`` and
    ``epoch`` are present only on servers with the ``replay`` capability,
    ``snapshot`` only on snapshot messages (section 6).
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    id: str
    event: ServerEvent
    channel: Channel
    timestamp: Timestamp
    priority: Priority = Priority.MEDIUM
    requires_ack: bool = False
    seq: int | None = None
    epoch: str | None = None
    snapshot: bool | None = None
    target: Annotated[Scope, WrapValidator(_known_target)]
    # InstanceOf: the decoded object as it is, not a copy (JSON keys are
    # strings already); the JSON schema is the same as dict[str, Any]'s.
    data: InstanceOf[dict[str, Any]]

    def to_wire(self) -> dict[str, Any]:
        """The JSON object sent on the wire (``seq``, ``epoch``, ``snapshot`` only when set)."""
        wire = self.model_dump(mode="json")
        for optional in ("seq", "epoch", "snapshot"):
            if wire.get(optional) is None:
                wire.pop(optional, None)
        return wire


class Batch(BaseModel):
    """``batch``: envelopes gathered within a short window, in order (capability ``batch``).

    Sent only to clients that announced the capability (section 5); each
    envelope is what the single event would have carried.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    messages: Annotated[list[Envelope], Field(min_length=1)]


def build_envelope(
    *,
    message_id: str,
    event: ServerEvent,
    timestamp: str,
    target: Scope,
    data: dict[str, Any],
    priority: Priority = Priority.MEDIUM,
    requires_ack: bool = False,
    seq: int | None = None,
    epoch: str | None = None,
) -> dict[str, Any]:
    """Build the wire envelope of an already validated payload.

    This is the one place where envelopes are assembled; it skips model
    validation because every part has been validated on the way in, and it
    runs once per message on the broadcast path.
    """
    wire: dict[str, Any] = {
        "id": message_id,
        "event": event.value,
        "channel": EVENT_CHANNEL[event].value,
        "timestamp": timestamp,
        "priority": priority.value,
        "requires_ack": requires_ack,
        "target": {
            "organization_id": target.organization_id,
            "department_id": target.department_id,
            "queue_name": target.queue_name,
        },
        "data": data,
    }
    if seq is not None:
        wire["seq"] = seq
    if epoch is not None:
        wire["epoch"] = epoch
    return wire
