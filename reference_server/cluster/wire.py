"""The messages between the nodes of a cluster: typed, frozen, one codec.

Every node publishes and reads these on Redis pub/sub (:mod:`.fanout`), and
acts on nothing else: a text that does not decode to one of them (a
python-socketio manager's ``enter_room`` command, say) is dropped.

The kinds:

- :class:`Delivery`: a published message, for every node to hand to its own sockets.
- :class:`Delivered`: a node's answer to the publishing node: how many of its
  sockets the delivery concerned (the broadcast's ``recipients`` is their sum).
- :class:`Kick`: disconnect a socket, wherever it is.

A message is the header (the message without the envelope, compact JSON,
one line) and, for a delivery, a newline and the envelope's JSON. The
envelope travels apart so that the store's append script can publish a
logged message in the same step as it appends it, completing the envelope
with its ``seq`` and ``epoch`` (:func:`store_frame`); compact JSON never
contains a raw newline, so the first one ends the header. A frame holds one
message or more, a newline between two: the append script publishes the
messages it logs together as one frame (one ``PUBLISH``, where Redis's work
per message was most of the script's).

The JSON Schema of the headers is committed as ``docs/schema/cluster/wire.json``
(``python -m reference_server.cluster.wire docs/schema/cluster/wire.json``
writes it; a test fails when it drifts).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from client_sdk.protocol import Scope, ServerEvent

__all__ = [
    "FRAME_SEPARATOR",
    "Delivered",
    "Delivery",
    "Kick",
    "NodeMessage",
    "WireError",
    "WireTarget",
    "decode",
    "decode_all",
    "encode",
    "store_frame",
    "wire_schema",
]

_SEPARATOR: Final = "\n"

FRAME_SEPARATOR: Final = _SEPARATOR
"""Between two messages of one frame (:func:`decode_all`)."""


class WireError(ValueError):
    """A text on the channel that is not one of our messages."""


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WireTarget(_Wire):
    """A message's target (a :class:`~client_sdk.protocol.Scope`) as it travels."""

    organization_id: str | None = None
    department_id: str | None = None
    queue_name: str | None = None

    @classmethod
    def of(cls, scope: Scope) -> WireTarget:
        """The wire form of ``scope``."""
        return cls(
            organization_id=scope.organization_id,
            department_id=scope.department_id,
            queue_name=scope.queue_name,
        )

    def scope(self) -> Scope:
        """The target as a scope.

        Raises:
            ValueError: a field is not a protocol identifier.
        """
        return Scope(self.organization_id, self.department_id, self.queue_name)


class Delivery(_Wire):
    """A published message: every node hands it to its own sockets that must get it."""

    kind: Literal["delivery"] = "delivery"
    origin: str
    """The node that published it (where the :class:`Delivered` answers go)."""
    event: ServerEvent
    target: WireTarget
    socket_ids: tuple[str, ...] | None = None
    """Only these sockets (``None``: everyone the target's rooms hold)."""
    stream: str | None = None
    """The stream it belongs to (its replays hold it back), if any."""
    requires_ack: bool = False
    envelope: dict[str, Any] = Field(exclude=True)
    """The envelope as clients get it (sent after the header, see the module)."""

    @field_validator("envelope")
    @classmethod
    def _has_id(cls, envelope: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(envelope.get("id"), str):
            raise ValueError("an envelope needs its id")
        return envelope


class Delivered(_Wire):
    """A node's answer to a :class:`Delivery`: the sockets of that node it concerned."""

    kind: Literal["delivered"] = "delivered"
    message_id: str
    node: str
    recipients: Annotated[int, Field(ge=0)]


class Kick(_Wire):
    """Disconnect ``socket_id`` (the node that holds it does)."""

    kind: Literal["kick"] = "kick"
    socket_id: str


NodeMessage = Annotated[Delivery | Delivered | Kick, Field(discriminator="kind")]
"""Any message between nodes."""

_ADAPTER: Final[TypeAdapter[Delivery | Delivered | Kick]] = TypeAdapter(NodeMessage)


def _header(message: Delivery | Delivered | Kick) -> str:
    return message.model_dump_json(exclude_none=False)


def encode(message: Delivery | Delivered | Kick) -> str:
    """The frame of ``message``."""
    if isinstance(message, Delivery):
        envelope = json.dumps(message.envelope, separators=(",", ":"))
        return _header(message) + _SEPARATOR + envelope
    return _header(message)


def store_frame(delivery: Delivery) -> tuple[str, str]:
    """``(head, tail)`` around the envelope: what the store's append script publishes.

    The script publishes ``head + envelope + tail``, the envelope completed
    with its ``seq`` and ``epoch``: the frame :func:`encode` would give.
    """
    return _header(delivery) + _SEPARATOR, ""


def decode(text: str | bytes) -> Delivery | Delivered | Kick:
    """The message in ``text``, a frame of one message.

    Raises:
        WireError: ``text`` is not a frame of ours, or holds more than one message.
    """
    messages = decode_all(text)
    if len(messages) != 1:
        raise WireError(f"{len(messages)} messages where one was expected")
    return messages[0]


def decode_all(text: str | bytes) -> list[Delivery | Delivered | Kick]:
    """The messages in ``text``, in order: a frame holds one or more, a newline between two.

    The store's append script publishes the messages of one script as one frame.
    A frame is taken whole or refused whole: every frame is written by a node,
    so a part that does not decode means the rest cannot be trusted either.

    Raises:
        WireError: ``text`` is not a frame of ours.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode()
        except UnicodeDecodeError:
            raise WireError("not UTF-8") from None
    lines = text.split(_SEPARATOR)
    messages: list[Delivery | Delivered | Kick] = []
    at = 0
    try:
        while at < len(lines):
            fields = json.loads(lines[at])
            at += 1
            if not isinstance(fields, dict):
                raise WireError("the header is not an object")
            if fields.get("kind") == "delivery":
                if at == len(lines):
                    raise WireError("a delivery without its envelope")
                fields["envelope"] = json.loads(lines[at])
                at += 1
            messages.append(_ADAPTER.validate_python(fields))
    except (ValueError, ValidationError) as exc:  # JSONDecodeError is a ValueError
        if isinstance(exc, WireError):
            raise
        raise WireError(f"not a message between nodes: {type(exc).__name__}") from None
    return messages


def wire_schema() -> dict[str, Any]:
    """The JSON Schema of the frames' headers (the envelope is the protocol's ``envelope.json``)."""
    schema = _ADAPTER.json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "intraday-live cluster message"
    schema["description"] = (
        "The header line of a frame on a cluster's Redis channel; a delivery's "
        "header is followed by a newline and the envelope (docs/schema/envelope.json)."
    )
    return schema


def render_schema() -> str:
    """The committed text of :func:`wire_schema`."""
    return json.dumps(wire_schema(), indent=2, sort_keys=True) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m reference_server.cluster.wire PATH``: write the schema to ``PATH``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m reference_server.cluster.wire PATH", file=sys.stderr)
        return 2
    path = Path(args[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_schema(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
