"""Messages as handlers receive them: the envelope plus its typed payload."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from .exceptions import MalformedMessageError
from .protocol import (
    EVENT_PAYLOADS,
    Channel,
    Envelope,
    Payload,
    Priority,
    Scope,
    ServerEvent,
)

__all__ = ["Message"]

P = TypeVar("P", bound=Payload, covariant=True)


@dataclass(frozen=True, slots=True)
class Message(Generic[P]):
    """One server event: ``envelope`` as sent, ``payload`` parsed into the event's model.

    Unknown fields of either are kept (``payload.model_extra``).
    """

    envelope: Envelope
    payload: P
    replayed: bool = False
    """Sent again after a reconnect or restart (section 6), not live."""

    @property
    def id(self) -> str:
        """The message id (unique per message)."""
        return self.envelope.id

    @property
    def event(self) -> ServerEvent:
        """The event name."""
        return self.envelope.event

    @property
    def channel(self) -> Channel:
        """The channel the event belongs to."""
        return self.envelope.channel

    @property
    def target(self) -> Scope:
        """Who the message was for."""
        return self.envelope.target

    @property
    def timestamp(self) -> datetime:
        """When the server sent it."""
        return self.envelope.timestamp

    @property
    def priority(self) -> Priority:
        """The message priority."""
        return self.envelope.priority

    @property
    def snapshot(self) -> bool:
        """Part of a snapshot: the latest state, sent first when subscribing."""
        return self.envelope.snapshot is True

    @property
    def seq(self) -> int | None:
        """The message's number in its stream (servers with ``replay``)."""
        return self.envelope.seq

    def as_replayed(self) -> Message[P]:
        """This message, marked as replayed."""
        return Message(self.envelope, self.payload, replayed=True)

    @staticmethod
    def from_wire(event: str, raw: Any) -> Message[Payload]:
        """The message a handler receives for the server event ``event`` with argument ``raw``.

        What the client does with every incoming event; useful to test
        handlers without a server.

        Raises:
            MalformedMessageError: not an envelope of ``event``, or a payload off its schema.
        """
        return _parse_message(event, raw)


# The models' own validators, each built once: ``model_validate`` per message
# would add a Python call and its checks around the same validation.
_ENVELOPE = Envelope.__pydantic_validator__.validate_python
_PAYLOADS: dict[str, Callable[[Any], Any]] = {
    event.value: model.__pydantic_validator__.validate_python
    for event, model in EVENT_PAYLOADS.items()
}


def _parse_message(event: str, raw: Any) -> Message[Payload]:
    try:
        envelope: Envelope = _ENVELOPE(raw)
    except ValidationError as exc:
        raise MalformedMessageError(
            f"{event}: not a valid envelope ({exc.error_count()} problems)", event=event, raw=raw
        ) from None
    if envelope.event != event:
        raise MalformedMessageError(
            f"{event}: envelope says {envelope.event}", event=event, raw=raw
        )
    try:
        payload: Payload = _PAYLOADS[event](envelope.data)  # the str: a cheaper key
    except ValidationError as exc:
        raise MalformedMessageError(
            f"{event}: payload off schema ({exc.error_count()} problems)", event=event, raw=raw
        ) from None
    return Message(envelope, payload)


class RecentIds:
    """The last ``capacity`` message ids, to drop duplicates (replays, reconnects)."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def seen(self, message_id: str) -> bool:
        """Record ``message_id``; ``True`` if it was already there."""
        if message_id in self._ids:
            self._ids.move_to_end(message_id)
            return True
        if self._capacity:
            self._ids[message_id] = None
            if len(self._ids) > self._capacity:
                self._ids.popitem(last=False)
        return False
