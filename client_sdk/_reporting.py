"""What a client tells its application besides messages: lifecycle handlers, errors, gaps.

``on_connect``, ``on_disconnect``, ``on_reconnect``, ``on_error`` and
``on_gap`` handlers, the ``errors`` and ``gaps`` observables, and the counts
``statistics()`` shows. A handler that raises is reported as an error and
never stops the client or the other handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from reactivex.subject import Subject

from ._callbacks import LIFECYCLE_HANDLERS, Callback, call_handler
from .exceptions import IntradayError
from .gaps import Gap, GapReason

__all__ = ["Reporter"]

log = logging.getLogger("client_sdk")


class Reporter:
    """The client's lifecycle handlers, its ``errors`` and ``gaps``, and their counts."""

    def __init__(self) -> None:
        self.errors: Subject[IntradayError] = Subject()
        self.gaps: Subject[Gap] = Subject()
        self.gap_count = 0
        self.handler_errors = 0
        self._lifecycle: dict[str, list[Callback]] = {name: [] for name in LIFECYCLE_HANDLERS}
        self._background: set[asyncio.Task[None]] = set()

    def add(self, name: str, handler: Callback) -> Callable[[], None]:
        """Register a lifecycle handler (``on_connect``, ...); returns its remover."""
        handlers = self._lifecycle[name]
        handlers.append(handler)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                handlers.remove(handler)

        return remove

    async def fire(self, name: str, *args: Any) -> None:
        """Run the lifecycle handlers of ``name``, each isolated from the others."""
        for handler in list(self._lifecycle[name]):
            try:
                await call_handler(handler, *args)
            except Exception as exc:
                self.handler_failed(name, exc)

    async def gap(self, gap: Gap) -> None:
        """Say that messages of a stream may be missing: log, ``gaps``, ``on_gap``."""
        self.gap_count += 1
        log.warning("messages of %s may be missing: %s", gap.stream, gap.reason)
        if not self.gaps.is_disposed:
            with contextlib.suppress(Exception):
                self.gaps.on_next(gap)
        await self.fire("on_gap", gap)

    async def error(self, error: IntradayError) -> None:
        """An error that failed no call (a server ``error``...): ``errors`` and ``on_error``."""
        self.report(error)
        await self.fire("on_error", error)

    def report(self, error: IntradayError) -> None:
        """Publish ``error`` on ``errors`` only."""
        if not self.errors.is_disposed:
            with contextlib.suppress(Exception):
                self.errors.on_next(error)

    def handler_failed(self, where: str, exc: Exception) -> None:
        """A handler or a reader raised: counted, logged and reported."""
        self.handler_errors += 1
        log.exception("handler for %s raised", where, exc_info=exc)
        error = IntradayError(f"handler for {where} raised {type(exc).__name__}: {exc}")
        error.__cause__ = exc
        self.report(error)

    def store_failed(self, error: IntradayError) -> None:
        """The resume file failed (from a flush): reported like a server error."""
        log.warning("%s", error)
        self._in_background(self.error(error))

    def overflowed(self, stream: str | None) -> None:
        """A dropped message the server cannot replay: said, never hidden."""
        self._in_background(self.gap(Gap(stream or "?", None, None, GapReason.OVERFLOW)))

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        # Kept referenced until done: the loop holds tasks weakly.
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def complete(self) -> None:
        """The client closed: ``errors`` and ``gaps`` complete."""
        self.errors.on_completed()
        self.gaps.on_completed()
