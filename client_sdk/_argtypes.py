"""Argument types shared by the command-line tools (``intraday-live``, ``load``, ``verify``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["positive"]


def positive(kind: type[int] | type[float]) -> Callable[[str], float]:
    """An ``argparse`` type: a number of ``kind`` greater than zero, else a clear error."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} is not positive")
        return value

    return parse
