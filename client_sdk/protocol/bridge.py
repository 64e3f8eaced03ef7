"""Frames of the plain-WebSocket bridge (protocol section 1).

A WebSocket upgrade on the Socket.IO path without the ``EIO`` query parameter
speaks JSON text frames instead of Engine.IO packets:

- client to server: ``{"event": NAME, "data": OBJECT, "id": N?}``;
- the answer to a frame with ``id``: ``{"event": "ack", "id": N, "data": ACK}``;
- server events: ``{"event": NAME, "data": ENVELOPE}``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from .events import ControlEvent

__all__ = ["BridgeFrame", "ack_frame", "event_frame"]


class BridgeFrame(BaseModel):
    """A frame sent by a bridge client."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event: Annotated[str, Field(min_length=1, max_length=128)]
    data: dict[str, Any] | None = None
    id: Annotated[int, Field(ge=0, le=2**53)] | None = None


def event_frame(event: str, data: Any) -> dict[str, Any]:
    """The frame carrying a server event to a bridge client."""
    return {"event": event, "data": data}


def ack_frame(frame_id: int, data: Any) -> dict[str, Any]:
    """The frame answering a client frame that carried ``id``."""
    return {"event": ControlEvent.ACK.value, "id": frame_id, "data": data}
