"""Error codes, the error object and ProtocolError (protocol section 8)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from client_sdk.protocol import (
    DEFAULT_RETRYABLE,
    HTTP_STATUS,
    ErrorCode,
    ErrorInfo,
    FailureAck,
    ProtocolError,
)

CODES = {
    "AUTH_FAILED",
    "UNAUTHORIZED",
    "INVALID_MESSAGE",
    "MESSAGE_TOO_LARGE",
    "RATE_LIMIT_EXCEEDED",
    "SUBSCRIPTION_FAILED",
    "ROOM_NOT_FOUND",
    "ROOM_FULL",
    "CONNECTION_LIMIT",
    "INTERNAL_ERROR",
}


def test_ten_codes() -> None:
    assert {c.value for c in ErrorCode} == CODES
    assert set(DEFAULT_RETRYABLE) == set(ErrorCode)
    assert set(HTTP_STATUS) == set(ErrorCode)


@pytest.mark.parametrize(
    ("code", "retryable"),
    [
        (ErrorCode.CONNECTION_LIMIT, True),
        (ErrorCode.INTERNAL_ERROR, True),
        (ErrorCode.AUTH_FAILED, False),
        (ErrorCode.UNAUTHORIZED, False),
        (ErrorCode.INVALID_MESSAGE, False),
    ],
)
def test_retryable_defaults(code: ErrorCode, retryable: bool) -> None:
    assert DEFAULT_RETRYABLE[code] is retryable
    assert ProtocolError(code, "m").retryable is retryable
    # A peer that omits ``retryable`` (section 3's connect_error) gets the default.
    assert ErrorInfo.model_validate({"code": code.value, "message": "m"}).retryable is retryable
    assert ProtocolError.from_wire({"code": code.value, "message": "m"}).retryable is retryable


def test_explicit_retryable_wins() -> None:
    assert ProtocolError(ErrorCode.AUTH_FAILED, "m", retryable=True).retryable is True
    wire = {"code": "CONNECTION_LIMIT", "message": "m", "retryable": False}
    assert ErrorInfo.model_validate(wire).retryable is False
    assert ProtocolError.from_wire(wire).retryable is False


def test_http_status_of_common_codes() -> None:
    assert HTTP_STATUS[ErrorCode.INVALID_MESSAGE] == 400
    assert HTTP_STATUS[ErrorCode.AUTH_FAILED] == 401
    assert HTTP_STATUS[ErrorCode.UNAUTHORIZED] == 403
    assert HTTP_STATUS[ErrorCode.ROOM_NOT_FOUND] == 404
    assert HTTP_STATUS[ErrorCode.MESSAGE_TOO_LARGE] == 413
    assert HTTP_STATUS[ErrorCode.RATE_LIMIT_EXCEEDED] == 429
    assert HTTP_STATUS[ErrorCode.INTERNAL_ERROR] == 500


def test_to_ack_without_details() -> None:
    ack = ProtocolError(ErrorCode.AUTH_FAILED, "bad credentials").to_ack()
    assert ack == {
        "success": False,
        "error": {"code": "AUTH_FAILED", "message": "bad credentials", "retryable": False},
    }
    assert "details" not in ack["error"]
    assert FailureAck.model_validate(ack).error.code is ErrorCode.AUTH_FAILED


def test_to_ack_with_details() -> None:
    error = ProtocolError(
        ErrorCode.AUTH_FAILED, "token expired", details={"reason": "token_expired"}
    )
    assert error.to_ack() == {
        "success": False,
        "error": {
            "code": "AUTH_FAILED",
            "message": "token expired",
            "retryable": False,
            "details": {"reason": "token_expired"},
        },
    }


def test_to_wire_is_plain_json() -> None:
    wire = ProtocolError(ErrorCode.ROOM_FULL, "full").to_wire()
    assert wire == {"code": "ROOM_FULL", "message": "full", "retryable": True}
    assert type(wire["code"]) is str


@pytest.mark.parametrize("code", list(ErrorCode))
@pytest.mark.parametrize("details", [None, {"reason": "token_expired", "limit": 100}])
@pytest.mark.parametrize("retryable", [None, True, False])
def test_from_wire_round_trip(
    code: ErrorCode, details: dict[str, object] | None, retryable: bool | None
) -> None:
    original = ProtocolError(code, "some message", details=details, retryable=retryable)
    again = ProtocolError.from_wire(original.to_wire())
    assert (again.code, again.message, again.details, again.retryable) == (
        original.code,
        original.message,
        original.details,
        original.retryable,
    )
    assert again.to_wire() == original.to_wire()


def test_protocol_error_is_an_exception_naming_its_code() -> None:
    error = ProtocolError(ErrorCode.UNAUTHORIZED, "other organization")
    assert isinstance(error, Exception)
    assert "UNAUTHORIZED" in str(error)
    assert "other organization" in str(error)


def test_details_are_copied() -> None:
    details = {"reason": "token_expired"}
    error = ProtocolError(ErrorCode.AUTH_FAILED, "m", details=details)
    details["reason"] = "changed"
    assert error.details == {"reason": "token_expired"}


@pytest.mark.parametrize(
    "wire",
    [
        {"code": "NOPE", "message": "m"},
        {"code": "AUTH_FAILED"},
        {"message": "m"},
        {"code": "AUTH_FAILED", "message": "m", "details": "not an object"},
    ],
)
def test_from_wire_rejects_non_errors(wire: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ProtocolError.from_wire(wire)


def test_error_info_keeps_unknown_fields() -> None:
    info = ErrorInfo.model_validate({"code": "INTERNAL_ERROR", "message": "m", "trace_id": "t1"})
    assert info.to_wire()["trace_id"] == "t1"
