"""Error codes and the error object (protocol section 8).

An error travels as ``{"code", "message", "retryable", "details"?}``: inside an
ack as ``{"success": false, "error": ERROR}``, as the ``error`` event when the
client asked for no ack, and as the ``connect_error`` data of a refused
handshake. :class:`ProtocolError` is the in-process form of the same thing, so
the server raises it where a rule is broken and one seam turns it into bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "DEFAULT_RETRYABLE",
    "HTTP_STATUS",
    "ErrorCode",
    "ErrorInfo",
    "FailureAck",
    "ProtocolError",
]


class ErrorCode(StrEnum):
    """The ten error codes of the protocol."""

    AUTH_FAILED = "AUTH_FAILED"
    UNAUTHORIZED = "UNAUTHORIZED"
    INVALID_MESSAGE = "INVALID_MESSAGE"
    MESSAGE_TOO_LARGE = "MESSAGE_TOO_LARGE"
    RATE_LIMIT_EXCEEDED = "RATE_LIMIT_EXCEEDED"
    SUBSCRIPTION_FAILED = "SUBSCRIPTION_FAILED"
    ROOM_NOT_FOUND = "ROOM_NOT_FOUND"
    ROOM_FULL = "ROOM_FULL"
    CONNECTION_LIMIT = "CONNECTION_LIMIT"
    INTERNAL_ERROR = "INTERNAL_ERROR"


DEFAULT_RETRYABLE: Final[Mapping[ErrorCode, bool]] = MappingProxyType(
    {
        # Retrying the same credentials or the same foreign organization can
        # never succeed; the client must surface these.
        ErrorCode.AUTH_FAILED: False,
        ErrorCode.UNAUTHORIZED: False,
        ErrorCode.INVALID_MESSAGE: False,
        ErrorCode.MESSAGE_TOO_LARGE: False,
        ErrorCode.ROOM_NOT_FOUND: False,
        # Conditions that pass with time: a slot frees up, the window rolls.
        ErrorCode.RATE_LIMIT_EXCEEDED: True,
        ErrorCode.SUBSCRIPTION_FAILED: True,
        ErrorCode.ROOM_FULL: True,
        ErrorCode.CONNECTION_LIMIT: True,
        ErrorCode.INTERNAL_ERROR: True,
    }
)
"""Whether an error of each code is worth retrying, unless the error says otherwise."""

HTTP_STATUS: Final[Mapping[ErrorCode, int]] = MappingProxyType(
    {
        ErrorCode.AUTH_FAILED: 401,
        ErrorCode.UNAUTHORIZED: 403,
        ErrorCode.INVALID_MESSAGE: 400,
        ErrorCode.MESSAGE_TOO_LARGE: 413,
        ErrorCode.RATE_LIMIT_EXCEEDED: 429,
        ErrorCode.SUBSCRIPTION_FAILED: 400,
        ErrorCode.ROOM_NOT_FOUND: 404,
        ErrorCode.ROOM_FULL: 409,
        ErrorCode.CONNECTION_LIMIT: 503,
        ErrorCode.INTERNAL_ERROR: 500,
    }
)
"""The HTTP status the management API answers with for each code."""


def _no_schema_default(schema: dict[str, Any]) -> None:
    # ``retryable`` has no single default on the wire: it depends on the code.
    schema.pop("default", None)


class ErrorInfo(BaseModel):
    """The wire form of an error."""

    model_config = ConfigDict(frozen=True, extra="allow")

    code: ErrorCode
    message: str
    retryable: bool = Field(
        default=False,
        description="Whether retrying can succeed; when absent, the default of the code "
        "(CONNECTION_LIMIT, INTERNAL_ERROR, RATE_LIMIT_EXCEEDED, ROOM_FULL and "
        "SUBSCRIPTION_FAILED are retryable, the other codes are not).",
        json_schema_extra=_no_schema_default,
    )
    details: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_retryable(cls, data: Any) -> Any:
        # A peer may omit ``retryable`` (section 3 shows a connect_error of just
        # code and message); the code's default must then apply, or a client
        # would give up on a retryable CONNECTION_LIMIT.
        if isinstance(data, Mapping) and data.get("retryable") is None:
            code = data.get("code")
            if isinstance(code, str) and code in DEFAULT_RETRYABLE:
                return {**data, "retryable": DEFAULT_RETRYABLE[ErrorCode(code)]}
        return data

    def to_wire(self) -> dict[str, Any]:
        """The JSON object sent on the wire (``details`` only when present)."""
        return self.model_dump(mode="json", exclude_none=True)


class FailureAck(BaseModel):
    """``{"success": false, "error": ERROR}``: the ack of any refused request."""

    model_config = ConfigDict(frozen=True, extra="allow")

    success: Literal[False] = False
    error: ErrorInfo


class ProtocolError(Exception):
    """A broken protocol rule, raised where it is detected and sent as :class:`ErrorInfo`.

    Args:
        code: the protocol error code.
        message: a human-readable explanation; never a stack trace.
        details: optional machine-readable context (``{"reason": "token_expired"}``).
        retryable: overrides :data:`DEFAULT_RETRYABLE` for this code.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        details: Mapping[str, Any] | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = dict(details) if details is not None else None
        self.retryable = DEFAULT_RETRYABLE[code] if retryable is None else retryable

    @property
    def info(self) -> ErrorInfo:
        """The error as its wire model."""
        return ErrorInfo(
            code=self.code, message=self.message, retryable=self.retryable, details=self.details
        )

    def to_wire(self) -> dict[str, Any]:
        """The error object as sent on the wire."""
        return self.info.to_wire()

    def to_ack(self) -> dict[str, Any]:
        """The failure ack ``{"success": false, "error": ...}``."""
        return {"success": False, "error": self.to_wire()}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> ProtocolError:
        """Rebuild a :class:`ProtocolError` from an error object received on the wire.

        Raises:
            pydantic.ValidationError: ``data`` is not an error object.
        """
        info = ErrorInfo.model_validate(data)
        return cls(info.code, info.message, details=info.details, retryable=info.retryable)
