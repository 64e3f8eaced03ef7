"""The identifier rule (protocol section 2), through every door it guards."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from client_sdk.protocol import (
    AuthenticateRequest,
    BroadcastTarget,
    Scope,
    SubscribeRequest,
    is_identifier,
)

VALID = [
    "a",
    "Z",
    "0",
    "9",
    "_",
    ".",
    "@",
    "-",
    "user_123",
    "org-123.example@tenant",
    "ABCxyz019_.@-",
    "x" * 128,
]

INVALID = [
    "",
    "x" * 129,
    "a:b",
    ":",
    "org 1",
    " a",
    "a\n",
    "\na",
    "a\tb",
    "a/b",
    "a#b",
    "a,b",
    "é",
    "caf\u00e9",
    "\uff21",  # fullwidth A
    "\u0663",  # Arabic-Indic digit three: a \d, but not [0-9]
    "a\u200bb",  # zero-width space
    "a\x00",
]


@pytest.mark.parametrize("value", VALID)
def test_is_identifier_accepts(value: str) -> None:
    assert is_identifier(value)


@pytest.mark.parametrize("value", INVALID)
def test_is_identifier_rejects(value: str) -> None:
    assert not is_identifier(value)


@pytest.mark.parametrize("value", [None, 123, b"abc", ["a"]])
def test_is_identifier_rejects_non_strings(value: object) -> None:
    assert not is_identifier(value)


def test_length_boundary() -> None:
    assert is_identifier("a" * 128)
    assert not is_identifier("a" * 129)
    assert AuthenticateRequest(user_id="u" * 128, organization_id="o").user_id == "u" * 128
    with pytest.raises(ValidationError):
        AuthenticateRequest(user_id="u" * 129, organization_id="o")


@pytest.mark.parametrize("value", VALID)
def test_models_accept_valid_identifiers(value: str) -> None:
    request = AuthenticateRequest.model_validate({"user_id": value, "organization_id": value})
    assert (request.user_id, request.organization_id) == (value, value)
    assert Scope(value, value, value).queue_name == value


@pytest.mark.parametrize("value", INVALID)
@pytest.mark.parametrize("field", ["user_id", "organization_id"])
def test_authenticate_rejects_invalid_identifiers(field: str, value: str) -> None:
    data = {"user_id": "user_123", "organization_id": "org_123", field: value}
    with pytest.raises(ValidationError):
        AuthenticateRequest.model_validate(data)


@pytest.mark.parametrize("value", INVALID)
@pytest.mark.parametrize("field", ["organization_id", "department_id", "queue_name"])
def test_filters_and_targets_reject_invalid_identifiers(field: str, value: str) -> None:
    with pytest.raises(ValidationError):
        SubscribeRequest.model_validate({"channels": ["kpi"], field: value})
    with pytest.raises(ValidationError):
        TypeAdapter(Scope).validate_python({field: value})
    with pytest.raises(ValidationError):
        TypeAdapter(BroadcastTarget).validate_python({field: value})


@pytest.mark.parametrize("value", INVALID)
def test_scope_rejects_invalid_identifiers(value: str) -> None:
    with pytest.raises(ValueError, match="not a valid identifier"):
        Scope(value)
    with pytest.raises(ValueError, match="not a valid identifier"):
        Scope("org", department_id=value)
    with pytest.raises(ValueError, match="not a valid identifier"):
        Scope("org", queue_name=value)
