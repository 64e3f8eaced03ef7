"""One mapping of validation failures to ``INVALID_MESSAGE`` (pure: data in, errors out).

The request handlers, the bridge, the publisher and the management API all
answer through :mod:`reference_server.validation`, so the shape is pinned
here once; the end-to-end tests of each path check that they use it.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from client_sdk.protocol import ErrorCode, ProtocolError
from reference_server.validation import (
    MAX_LISTED_ERRORS,
    invalid_message,
    parse_model,
    validating,
)

SECRET = "s3cret-token-value"


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str
    count: int


def validation_error(data: Any) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        Request.model_validate(data)
    return caught.value


def test_a_validation_error_names_each_field_and_never_echoes_input() -> None:
    error = invalid_message(validation_error({"count": SECRET, "token": SECRET}), "request")
    assert error.code is ErrorCode.INVALID_MESSAGE
    assert error.retryable is False
    assert error.message == "invalid request: user_id, count, token"
    assert error.details == {
        "errors": [
            {"field": "user_id", "problem": "Field required"},
            {
                "field": "count",
                "problem": "Input should be a valid integer, unable to parse string as an integer",
            },
            {"field": "token", "problem": "Extra inputs are not permitted"},
        ]
    }
    assert SECRET not in str(error.to_wire())


def test_an_error_list_gives_the_same_answer_as_its_validation_error() -> None:
    """FastAPI hands over the list (with each input in it): same error, input left out."""
    exc = validation_error({"count": SECRET})
    as_list = invalid_message(exc.errors(), "request")
    assert as_list.to_wire() == invalid_message(exc, "request").to_wire()
    assert SECRET not in str(as_list.to_wire())


def test_an_error_without_a_location_is_named_after_what_was_validated() -> None:
    error = invalid_message([{"loc": (), "msg": "Input should be an object"}], "frame")
    assert error.message == "invalid frame: frame"
    assert error.details == {"errors": [{"field": "frame", "problem": "Input should be an object"}]}


def test_at_most_ten_problems_are_listed() -> None:
    errors = [{"loc": (f"field_{i}",), "msg": "bad"} for i in range(50)]
    listed = invalid_message(errors, "request").details
    assert listed is not None
    assert len(listed["errors"]) == MAX_LISTED_ERRORS == 10


def test_parse_model_returns_the_model_or_raises_without_the_pydantic_error() -> None:
    assert parse_model(Request, {"user_id": "u", "count": 1}, "request") == Request(
        user_id="u", count=1
    )
    with pytest.raises(ProtocolError) as caught:
        parse_model(Request, {"user_id": "u", "count": SECRET}, "subscribe request")
    assert caught.value.message == "invalid subscribe request: count"
    # The pydantic error carries the input: it must not ride along as the cause or context.
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__ is True


def test_validating_translates_only_validation_errors() -> None:
    with pytest.raises(ProtocolError) as caught, validating("kpi:update payload"):
        Request.model_validate({})
    assert caught.value.message == "invalid kpi:update payload: user_id, count"
    with pytest.raises(KeyError), validating("anything"):
        raise KeyError("not a validation problem")
