"""One protocol request and its ack: the request models' wire form, refusals as exceptions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from ._transport import SocketIOTransport
from .exceptions import MalformedMessageError, ServerError

__all__ = ["WireRequest", "build_request", "parse_ack", "request"]

_R = TypeVar("_R", bound=BaseModel)


class WireRequest(Protocol):
    """A client request model of :mod:`client_sdk.protocol` (they all have ``to_wire``)."""

    def to_wire(self) -> dict[str, Any]:
        """The JSON object sent."""
        ...


def build_request(model: type[_R], **fields: Any) -> _R:
    """A request model, or ``ValueError`` naming the bad field (nothing is sent)."""
    try:
        return model(**fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        )
        raise ValueError(f"{model.__name__}: {problems}") from None


async def request(
    transport: SocketIOTransport,
    event: str,
    body: WireRequest,
    timeout: float,
    on_answer: Callable[[Any], None] | None = None,
) -> dict[str, Any]:
    """Send one protocol request and return its success ack.

    Raises:
        ServerError: the server refused (its protocol error).
        MalformedMessageError: the ack is not an object.
        ConnectionLostError, RequestTimeoutError: no answer.
    """
    ack = await transport.call(event, body.to_wire(), timeout, on_answer=on_answer)
    if not isinstance(ack, dict):
        raise MalformedMessageError(f"{event}: the ack is not an object", event=event, raw=ack)
    if ack.get("success") is False:
        raise ServerError.from_wire(ack.get("error"))
    return ack


def parse_ack(model: type[_R], event: str, raw: dict[str, Any]) -> _R:
    """A success ack as its model, or ``MalformedMessageError`` (never a ``ValidationError``)."""
    try:
        return model.model_validate(raw)
    except ValidationError:
        raise MalformedMessageError(
            f"{event}: the success ack is not the protocol's", event=event, raw=raw
        ) from None
