"""How a check concludes other than by passing: :class:`CheckFailure` and :class:`CheckSkipped`.

Every part of the suite raises these (the peers, the admin access, the
checks), so they stand alone, importing nothing of the suite.
"""

from __future__ import annotations

import json
from typing import Any, Final

__all__ = ["CheckFailure", "CheckSkipped", "clip", "show"]

_SHOWN: Final = 600
"""Characters of a value quoted in a failure message."""


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def show(value: Any, limit: int = _SHOWN) -> str:
    """A compact, bounded rendering of ``value`` for failure messages."""
    if isinstance(value, str):
        text = repr(value)
    else:
        try:
            text = json.dumps(value, default=str, sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError):
            text = repr(value)
    return clip(text, limit)


class CheckFailure(AssertionError):
    """The server broke a rule: what was expected, what was sent, what came back.

    Args:
        expected: the rule, as the server should have honoured it.
        sent: what the check sent (a request, a broadcast, ...).
        received: what the server answered or delivered, or the lack of it.
    """

    _NOTHING: Final = object()

    def __init__(self, expected: str, *, sent: Any = _NOTHING, received: Any = _NOTHING) -> None:
        lines = [f"expected: {expected}"]
        if sent is not CheckFailure._NOTHING:
            lines.append(f"sent:     {clip(sent, 1500) if isinstance(sent, str) else show(sent)}")
        if received is not CheckFailure._NOTHING:
            shown = clip(received, 1500) if isinstance(received, str) else show(received)
            lines.append(f"received: {shown}")
        super().__init__("\n".join(lines))
        self.expected = expected


class CheckSkipped(Exception):
    """The check cannot run against this server or with these options."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
