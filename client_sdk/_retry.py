"""The one owner of retries: what is worth retrying, and how long to wait in between.

Two parts of the SDK retry: the connection supervisor (connect, authenticate,
resubscribe after an outage) and a hook whose subscription was refused for a
while (``ROOM_FULL``). Both take their policy from here, built from the
client's configuration, so the backoff, its jitter, its bounds and the test
switch (``ClientConfig.retry_sleep``) are one thing. tenacity does the
looping; this module only says how.

Retried: losing the connection, a request left unanswered, and server
refusals marked ``retryable`` (``CONNECTION_LIMIT``, ``ROOM_FULL``, ...). Never
retried: refused credentials, another organization, a malformed request:
trying again cannot succeed, so the failure reaches the application.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    stop_any,
    stop_never,
    wait_exponential,
    wait_random,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from .config import ClientConfig
from .exceptions import ConnectionLostError, RequestTimeoutError, ServerError

__all__ = ["RetryPolicy", "is_retryable"]

Sleep = Callable[[float], Awaitable[Any]]

log = logging.getLogger("client_sdk")


def is_retryable(exc: BaseException) -> bool:
    """Whether another attempt after ``exc`` can succeed."""
    if isinstance(exc, ServerError):
        return exc.retryable
    return isinstance(exc, (ConnectionLostError, RequestTimeoutError))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to try again.

    The first attempt is immediate; the delay before attempt ``n + 1`` is
    ``first_delay * 2 ** (n - 1)`` capped at ``max_delay``, plus up to
    ``jitter * first_delay`` seconds at random.

    Attributes:
        attempts: attempts in all (``None``: no limit).
        first_delay: seconds before the second attempt.
        max_delay: the cap on one delay.
        jitter: the random extra, as a fraction of ``first_delay``.
        max_elapsed: seconds after which no new attempt starts (``None``: no limit).
        sleep: what waits (``asyncio.sleep``, or a test's virtual clock).
    """

    attempts: int | None
    first_delay: float
    max_delay: float
    jitter: float = 0.0
    max_elapsed: float | None = None
    sleep: Sleep = asyncio.sleep

    @classmethod
    def of(cls, config: ClientConfig) -> RetryPolicy:
        """The policy of a client's reconnections (one attempt when reconnection is off)."""
        return cls(
            attempts=config.reconnection_attempts if config.reconnection else 1,
            first_delay=config.reconnection_delay,
            max_delay=config.reconnection_delay_max,
            jitter=config.jitter,
            max_elapsed=config.reconnection_max_elapsed,
            sleep=config.retry_sleep or asyncio.sleep,
        )

    def unbounded(self) -> RetryPolicy:
        """The same backoff without a limit (for work that lasts as long as it is wanted)."""
        return replace(self, attempts=None, max_elapsed=None)

    def retrying(
        self,
        *,
        sleep: Sleep | None = None,
        reraise: bool = False,
        what: str = "an",
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> AsyncRetrying:
        """A tenacity loop of this policy: ``async for attempt in policy.retrying(): ...``.

        Every failed attempt that is retried is logged at INFO on the
        ``client_sdk`` logger with its number, its cause and the delay before
        the next one, so a client that keeps retrying is never silent.

        Args:
            sleep: waits instead of the policy's own (one that can be interrupted, say).
            reraise: end with the last exception itself rather than ``tenacity.RetryError``.
            what: names the work in the log line (``connection``).
            on_failure: hears of every failed attempt the policy would retry (the
                last one too, before it gives up).
        """

        def before_sleep(state: RetryCallState) -> None:
            outcome = state.outcome
            error = outcome.exception() if outcome is not None else None
            delay = state.next_action.sleep if state.next_action is not None else 0.0
            log.info(
                "%s attempt %d failed: %s; retrying in %.1f s",
                what,
                state.attempt_number,
                error,
                delay,
            )

        def after(state: RetryCallState) -> None:
            outcome = state.outcome
            error = outcome.exception() if outcome is not None else None
            if error is not None and on_failure is not None:
                on_failure(error)

        wait: wait_base = wait_exponential(multiplier=self.first_delay, max=self.max_delay)
        if self.jitter:
            wait = wait + wait_random(0, self.jitter * self.first_delay)
        stop: stop_base = stop_never if self.attempts is None else stop_after_attempt(self.attempts)
        if self.max_elapsed is not None:
            stop = stop_any(stop, stop_after_delay(self.max_elapsed))
        return AsyncRetrying(
            stop=stop,
            wait=wait,
            retry=retry_if_exception(is_retryable),
            sleep=sleep or self.sleep,
            reraise=reraise,
            before_sleep=before_sleep,
            after=after,
        )
