"""Wire timestamps: ISO 8601 in UTC with millisecond precision and a ``Z``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, PlainSerializer

__all__ = ["Timestamp", "format_timestamp", "utc_now"]


def utc_now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def format_timestamp(moment: datetime) -> str:
    """``2026-11-25T10:30:00.123Z``; a naive ``moment`` is taken to be UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _assume_utc(moment: datetime) -> datetime:
    # Producers in other languages often drop the offset; UTC is the only
    # reading that does not depend on the machine that parses it.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


Timestamp = Annotated[
    datetime,
    AfterValidator(_assume_utc),
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
]
"""A datetime field: accepts ISO 8601 (naive means UTC), serializes as :func:`format_timestamp`."""
