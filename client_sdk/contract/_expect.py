"""Assertions on what a server sent, failing with what was sent and what came back."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..protocol import ErrorCode, ErrorInfo
from .failures import CheckFailure

__all__ = ["error_object", "failure_ack", "model", "require"]

M = TypeVar("M", bound=BaseModel)


def require(condition: bool, expected: str, *, sent: Any = None, received: Any = None) -> None:
    """Fail with ``expected`` (and what was sent and received) unless ``condition``."""
    if condition:
        return
    if sent is None:
        raise CheckFailure(expected, received=received)
    raise CheckFailure(expected, sent=sent, received=received)


def model(kind: type[M], data: Any, what: str, *, sent: Any = None) -> M:
    """Validate ``data`` as ``kind``; the model.

    Raises:
        CheckFailure: naming the fields that do not follow the schema.
    """
    try:
        return kind.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        expected = f"{what} to follow its schema ({problems[:400]})"
        if sent is None:
            raise CheckFailure(expected, received=data) from None
        raise CheckFailure(expected, sent=sent, received=data) from None


def error_object(
    value: Any, codes: Collection[ErrorCode], what: str, *, sent: Any = None
) -> ErrorInfo:
    """Check an ERROR object ``{"code", "message", "retryable", "details"?}``, code in ``codes``.

    ``retryable`` is required here (section 8 lists it in every error), and no
    message may carry a stack trace.
    """
    wanted = " or ".join(sorted(c.value for c in codes))
    if not isinstance(value, Mapping):
        require(False, f"{what}: an ERROR object with code {wanted}", sent=sent, received=value)
    assert isinstance(value, Mapping)
    require(
        isinstance(value.get("retryable"), bool),
        f"{what}: an ERROR object with a boolean 'retryable'",
        sent=sent,
        received=value,
    )
    info = model(ErrorInfo, value, f"{what}: the ERROR object", sent=sent)
    require(info.code in codes, f"{what}: error code {wanted}", sent=sent, received=value)
    require(
        "Traceback" not in info.message and 'File "' not in info.message,
        f"{what}: an error message without a stack trace",
        sent=sent,
        received=value,
    )
    return info


def failure_ack(
    ack: Any, codes: Collection[ErrorCode], what: str, *, sent: Any = None
) -> ErrorInfo:
    """Check a failure ack ``{"success": false, "error": ERROR}`` with a code in ``codes``."""
    wanted = " or ".join(sorted(c.value for c in codes))
    require(
        isinstance(ack, Mapping) and ack.get("success") is False,
        f"{what}: a failure ack {{success: false, error: {{code: {wanted}}}}}",
        sent=sent,
        received=ack,
    )
    assert isinstance(ack, Mapping)
    return error_object(ack.get("error"), codes, what, sent=sent)
