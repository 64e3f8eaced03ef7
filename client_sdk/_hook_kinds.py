"""Hooks that hold more than the latest message: alerts with a count, connection state, health.

The public face is :mod:`client_sdk.hooks`, which makes them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ._backpressure import Backpressure
from ._hook import Hook
from ._message_hook import MessageHook
from ._messages import Message
from .exceptions import IntradayError
from .protocol import AlertPayload, Channel, ConnectionState, Scope

if TYPE_CHECKING:
    from ._client import IntradayClient

__all__ = ["AlertHook", "ConnectionHealth", "ConnectionStatusHook", "HealthHook"]


class AlertHook(MessageHook[AlertPayload]):
    """:func:`alert_notifications`: alert messages plus an unread count and recent history.

    Example:
        >>> alerts = alert_notifications(client)  # doctest: +SKIP
        >>> alerts.subscribe(lambda m: print(m.payload.severity, m.payload.rule_name))
        >>> alerts.alert_count  # alerts since the last clear_count()
        >>> alerts.clear_count()
    """

    def __init__(
        self,
        client: IntradayClient,
        *,
        filter: Scope,
        policy: Backpressure,
        keep: int = 100,
        snapshot: bool = True,
    ) -> None:
        super().__init__(
            client,
            channels=(Channel.ALERTS,),
            events=None,
            filter=filter,
            policy=policy,
            snapshot=snapshot,
        )
        self._count = 0
        self._recent: deque[Message[AlertPayload]] = deque(maxlen=keep)

    @property
    def alert_count(self) -> int:
        """Alerts received since the last :meth:`clear_count` (the unread badge).

        (Not ``count``: that name is the Rx operator every observable has.)
        """
        return self._count

    @property
    def recent(self) -> tuple[Message[AlertPayload], ...]:
        """The last alerts received, oldest first (up to ``keep``)."""
        return tuple(self._recent)

    def clear_count(self) -> None:
        """Reset :attr:`alert_count` to zero (the user has seen them)."""
        self._count = 0

    def _accept(self, message: Message[AlertPayload]) -> None:
        self._count += 1
        self._recent.append(message)
        super()._accept(message)


class ConnectionStatusHook(Hook[ConnectionState]):
    """:func:`connection_status`: the client's state; a new observer gets the current one.

    Example:
        >>> status = connection_status(client)  # doctest: +SKIP
        >>> status.subscribe(lambda state: print("connection:", state))
        >>> status.latest
        <ConnectionState.AUTHENTICATED: 'authenticated'>
    """

    @property
    def latest(self) -> ConnectionState:
        """The client's current state."""
        return self._client.state

    def _greeting(self) -> ConnectionState:
        return self._client.state

    def _state_changed(self, state: ConnectionState) -> None:
        if not self._starting:  # the current state is the greeting
            self._emit_logged(state)


@dataclass(frozen=True, slots=True)
class ConnectionHealth:
    """The connection's health after a ping (or a state change).

    Attributes:
        state: the client's state when measured.
        round_trip_seconds: the last successful ping's round trip (``None`` before one).
        last_pong_at: when that ping was answered (UTC).
        missed_pongs: pings failed or timed out in a row since the last answer.
        healthy: connected and fewer than the hook's ``unhealthy_after`` pongs missed.

    Example:
        >>> checks = health(client, interval=1.0)  # doctest: +SKIP
        >>> checks.subscribe(lambda h: h.healthy or print("missed", h.missed_pongs))
    """

    state: ConnectionState
    round_trip_seconds: float | None
    last_pong_at: datetime | None
    missed_pongs: int
    healthy: bool


class HealthHook(Hook[ConnectionHealth]):
    """:func:`health`: pings the server every ``interval`` while observed.

    Emits a :class:`ConnectionHealth` after every ping and on every state change. A new
    observer gets the last one at once.

    Example:
        >>> checks = health(client, interval=5.0)  # doctest: +SKIP
        >>> checks.subscribe(lambda h: print(h.healthy, h.round_trip_seconds))
    """

    def __init__(
        self,
        client: IntradayClient,
        *,
        interval: float,
        timeout: float | None,
        unhealthy_after: int,
        policy: Backpressure,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, not {interval}")
        if unhealthy_after < 1:
            raise ValueError(f"unhealthy_after must be at least 1, not {unhealthy_after}")
        super().__init__(client, policy)
        self._interval = interval
        self._timeout = timeout if timeout is not None else interval
        self._unhealthy_after = unhealthy_after
        self._pinger: asyncio.Task[None] | None = None
        self._round_trip: float | None = None
        self._last_pong: datetime | None = None
        self._missed = 0

    @property
    def interval(self) -> float:
        """Seconds between the starts of two pings."""
        return self._interval

    def _greeting(self) -> ConnectionHealth | None:
        return self._latest

    def _start(self) -> None:
        self._latest = None
        self._round_trip = None
        self._last_pong = None
        self._missed = 0
        self._pinger = asyncio.get_running_loop().create_task(self._ping_forever())

    def _stop(self) -> None:
        pinger, self._pinger = self._pinger, None
        if pinger is not None:
            pinger.cancel()

    def _state_changed(self, state: ConnectionState) -> None:
        if not self._starting:
            self._publish()

    def _publish(self) -> None:
        state = self._client.state
        connected = state in (ConnectionState.CONNECTED, ConnectionState.AUTHENTICATED)
        self._emit_logged(
            ConnectionHealth(
                state=state,
                round_trip_seconds=self._round_trip,
                last_pong_at=self._last_pong,
                missed_pongs=self._missed,
                healthy=connected and self._missed < self._unhealthy_after,
            )
        )

    async def _ping_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                async with asyncio.timeout(self._timeout):
                    round_trip = await self._client.ping()
            except (IntradayError, TimeoutError):
                self._missed += 1
            else:
                self._round_trip = round_trip
                self._last_pong = datetime.now(UTC)
                self._missed = 0
            self._publish()
            await asyncio.sleep(max(0.0, self._interval - (loop.time() - started)))


# -- the hooks ----------------------------------------------------------------------
