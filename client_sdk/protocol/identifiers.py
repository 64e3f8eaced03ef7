"""The identifier rule (protocol section 2).

``user_id``, ``organization_id``, ``department_id`` and ``queue_name`` are
1-128 characters from ``[A-Za-z0-9_.@-]``. The colon is excluded on purpose:
it separates room segments, so an identifier containing one could forge a
room of another scope (``kpi:org:a:dept:b`` smuggled in as a queue name).
"""

from __future__ import annotations

import re
from typing import Annotated, Final

from pydantic import StringConstraints

__all__ = ["IDENTIFIER_PATTERN", "Identifier", "is_identifier"]

IDENTIFIER_PATTERN: Final = r"^[A-Za-z0-9_.@-]{1,128}$"
_IDENTIFIER_RE: Final = re.compile(IDENTIFIER_PATTERN)

Identifier = Annotated[
    str, StringConstraints(pattern=IDENTIFIER_PATTERN, min_length=1, max_length=128)
]
"""A protocol identifier, validated by pydantic wherever a model field uses it."""


def is_identifier(value: object) -> bool:
    """Tell whether ``value`` is a string that satisfies the identifier rule."""
    # fullmatch, not match: with match, "$" would accept a trailing newline.
    return isinstance(value, str) and _IDENTIFIER_RE.fullmatch(value) is not None
