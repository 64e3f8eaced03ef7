"""Validation failures as the protocol's ``INVALID_MESSAGE``, in one place.

The request handlers, the plain-WebSocket bridge, the publisher and the
management API all validate what they are sent with pydantic. Whatever the
path, a failure answers the same error: ``invalid <what>: <fields>`` with
``details.errors`` listing each field and its problem. The offending input is
never echoed back: it may be large, and it may be somebody's secret (a token
in the wrong field).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from client_sdk.protocol import ErrorCode, ProtocolError

__all__ = ["MAX_LISTED_ERRORS", "invalid_message", "parse_model", "validating"]

MAX_LISTED_ERRORS = 10
"""Problems listed in ``details.errors``; a huge invalid object must not make a huge answer."""

M = TypeVar("M", bound=BaseModel)


def invalid_message(
    errors: ValidationError | Iterable[Mapping[str, Any]], what: str
) -> ProtocolError:
    """``INVALID_MESSAGE`` naming the invalid fields of ``what``, never echoing input.

    Args:
        errors: a pydantic :class:`~pydantic.ValidationError`, or the error
            list of one (what FastAPI's ``RequestValidationError.errors()`` is).
        what: what was being validated (``"subscribe request"``), for the message.
    """
    if isinstance(errors, ValidationError):
        errors = errors.errors(include_url=False, include_input=False, include_context=False)
    problems: list[dict[str, str]] = []
    for error in errors:
        if len(problems) == MAX_LISTED_ERRORS:
            break
        # Only the location and pydantic's message: the error dicts also carry the input.
        field = ".".join(str(part) for part in error.get("loc", ())) or what
        problems.append({"field": field, "problem": str(error.get("msg", ""))})
    fields = ", ".join(p["field"] for p in problems)
    return ProtocolError(
        ErrorCode.INVALID_MESSAGE, f"invalid {what}: {fields}", details={"errors": problems}
    )


@contextlib.contextmanager
def validating(what: str) -> Iterator[None]:
    """Turn a :class:`~pydantic.ValidationError` raised in the block into ``INVALID_MESSAGE``.

    For validation that is not a plain ``model_validate`` (the payload of a
    broadcast is parsed by its event's model, chosen at run time).

    Raises:
        ProtocolError: ``INVALID_MESSAGE`` about ``what``.
    """
    try:
        yield
    except ValidationError as exc:
        # ``from None``: the pydantic error holds the input, which must not travel on.
        raise invalid_message(exc, what) from None


def parse_model(model: type[M], data: Any, what: str) -> M:
    """Validate ``data`` as ``model``.

    Raises:
        ProtocolError: ``INVALID_MESSAGE`` about ``what``.
    """
    with validating(what):
        return model.model_validate(data)
