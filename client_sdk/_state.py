"""The client's connection state: its observable, and the moves the protocol allows.

:data:`client_sdk.protocol.ALLOWED_TRANSITIONS` is the table; every change of
state goes through :class:`StateCell`, which checks it. An illegal move is a
bug of the SDK, not of the application: it is logged, and warned about as a
``RuntimeWarning`` (which the SDK's own test suite turns into an error), and
then made anyway, because a client stuck in a stale state would be worse.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import warnings
from collections.abc import Collection

import reactivex
from reactivex.subject import BehaviorSubject

from .exceptions import RequestTimeoutError
from .protocol import ALLOWED_TRANSITIONS, ConnectionState

__all__ = ["StateCell"]

log = logging.getLogger("client_sdk")


class StateCell:
    """The current :class:`ConnectionState` and every change of it, the current one first."""

    def __init__(self) -> None:
        self._subject = BehaviorSubject(ConnectionState.DISCONNECTED)

    @property
    def value(self) -> ConnectionState:
        """The current state."""
        return self._subject.value

    @property
    def changes(self) -> reactivex.Observable[ConnectionState]:
        """Every state, the current one first (a ``BehaviorSubject``)."""
        return self._subject

    def set(self, state: ConnectionState) -> None:
        """Move to ``state`` (nothing if it is the current one)."""
        current = self._subject.value
        if state is current or self._subject.is_disposed:
            return
        if state not in ALLOWED_TRANSITIONS[current]:
            log.error("illegal client state change %s -> %s (a bug of the SDK)", current, state)
            warnings.warn(
                f"illegal client state change {current} -> {state}", RuntimeWarning, stacklevel=2
            )
        # An observer that raises must not stop the client from moving on.
        with contextlib.suppress(Exception):
            self._subject.on_next(state)

    async def wait_for(
        self, wanted: Collection[ConnectionState], timeout: float | None
    ) -> ConnectionState:
        """Wait until the state is one of ``wanted``; return it.

        Raises:
            RequestTimeoutError: not reached within ``timeout``.
        """
        reached: asyncio.Future[ConnectionState] = asyncio.get_running_loop().create_future()

        def check(state: ConnectionState) -> None:
            if state in wanted and not reached.done():
                reached.set_result(state)

        disposable = self.changes.subscribe(check)
        try:
            async with asyncio.timeout(timeout):  # wait_for can drop a cancellation on 3.11
                return await reached
        except TimeoutError:
            names = ", ".join(s for s in wanted if s is not ConnectionState.FAILED)
            raise RequestTimeoutError(f"state {names} not reached") from None
        finally:
            disposable.dispose()

    def complete(self) -> None:
        """No more states: observers complete (the client was closed)."""
        self._subject.on_completed()
