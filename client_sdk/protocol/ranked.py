"""String enums whose members compare by rank, not by spelling.

:class:`~client_sdk.protocol.Severity` and :class:`~client_sdk.protocol.Priority`
are string enums (their values are the wire's strings), so the ordering
``str`` gives them would be alphabetical: ``"low" > "high"``. A
:class:`RankedStrEnum` orders its members the way they are declared, so
``Severity.CRITICAL >= Severity.HIGH`` and ``max(severities)`` mean what
they say. Equality and hashing stay those of the string (``Severity.LOW ==
"low"``); a plain string compared by order is taken as the member of that
value; any other string, another enum or another type is not comparable
(``TypeError``).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["RankedStrEnum"]


class RankedStrEnum(StrEnum):
    """A :class:`~enum.StrEnum` ordered by declaration: the first member ranks lowest."""

    @property
    def rank(self) -> int:
        """0 for the first (lowest) member, 1 for the next, and so on."""
        return list(type(self)).index(self)

    def _other_rank(self, other: object) -> int | None:
        if isinstance(other, type(self)):
            return other.rank
        if isinstance(other, str) and not isinstance(other, RankedStrEnum):
            try:
                return type(self)(other).rank
            except ValueError:
                # Not NotImplemented: Python would fall back on str's alphabetical order.
                raise TypeError(f"{other!r} is not a {type(self).__name__}") from None
        return None

    def __lt__(self, other: object) -> bool:
        rank = self._other_rank(other)
        if rank is None:
            return NotImplemented
        return self.rank < rank

    def __le__(self, other: object) -> bool:
        rank = self._other_rank(other)
        if rank is None:
            return NotImplemented
        return self.rank <= rank

    def __gt__(self, other: object) -> bool:
        rank = self._other_rank(other)
        if rank is None:
            return NotImplemented
        return self.rank > rank

    def __ge__(self, other: object) -> bool:
        rank = self._other_rank(other)
        if rank is None:
            return NotImplemented
        return self.rank >= rank
