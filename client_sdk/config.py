"""Client configuration: one frozen, validated value, changed with :meth:`ClientConfig.replace`.

The SDK reads no environment variable by itself; build the config from
whatever your application uses.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, TypedDict, Unpack

from ._backpressure import BUFFER, Backpressure
from .protocol import is_identifier

__all__ = ["ClientConfig", "ConfigOverrides", "TokenProvider"]

TokenProvider = Callable[[], "str | Awaitable[str | None] | None"]
"""Called (sync or async) on every connection and reconnection for a fresh token."""

Sleep = Callable[[float], Awaitable[Any]]

DEFAULT_HANDLER_BACKPRESSURE: Final = BUFFER(1024)
"""What waits for slow ``client.on(...)`` handlers unless configured otherwise."""


@dataclass(frozen=True, kw_only=True)
class ClientConfig:
    """Everything an :class:`~client_sdk.IntradayClient` needs to know.

    Defaults follow the original console's client options (path ``/ws``,
    reconnection on, 5 attempts, 1 s first delay, 20 s timeout) plus what
    real use needs: a maximum delay, jitter, transports, headers, a token
    provider and an ack timeout.

    Attributes:
        url: the server's base URL, ``http(s)://host:port``.
        path: the Socket.IO path.
        user_id: who to authenticate as (with ``organization_id``); without
            both, the client connects but does not authenticate by itself.
        organization_id: the organization to authenticate into.
        token: a static JWT; ``token_provider`` wins when both are given.
        token_provider: returns a fresh token, called on every (re)connection
            and once more when the server says the token expired.
        capabilities: announced at authentication (``replay`` and ``snapshot``
            by default: the client resumes streams and accepts snapshots).
        batch: announce ``batch`` too (on by default): a server that offers it
            then sends messages gathered into ``batch`` events, which costs
            both sides far less per message; the client hands each message
            to the application exactly as if it had come alone. ``False``
            leaves it to ``capabilities``.
        reconnection: reconnect after an unexpected disconnect.
        reconnection_attempts: attempts per outage; ``None`` retries for ever
            (for bots).
        reconnection_delay: the delay before the second attempt; it doubles
            each attempt (the first attempt is immediate).
        reconnection_delay_max: the cap on that delay.
        reconnection_max_elapsed: seconds after which an outage's attempts
            stop even if ``reconnection_attempts`` allows more (``None``: no
            limit).
        jitter: up to ``jitter * reconnection_delay`` seconds are added at
            random to each delay, so a fleet of clients does not reconnect in
            lockstep.
        timeout: seconds to establish one connection.
        ack_timeout: seconds to wait for the answer to a request.
        transports: Engine.IO transports in order of preference.
        headers: extra HTTP headers of the handshake.
        auto_connect: connect on ``async with`` entry.
        dedupe_window: how many recent message ids are remembered to drop duplicates.
        resume_store: a file (SQLite) that keeps the position in every stream
            and the recent message ids, written after each message's handlers
            finished (on a worker thread, once per dispatch cycle), so a
            process started again resumes where the last one stopped
            (``None``: positions last as long as the client). One process
            per file: a file that is not writable, not a resume file or in
            use elsewhere is refused with ``ResumeStoreError`` when the
            client is made.
        handler_backpressure: how many messages wait for the handlers
            registered with ``client.on(...)`` when they fall behind the feed
            (1024 by default). A message of a stream that does not fit is
            dropped, counted in ``statistics().messages_dropped``, and asked
            for again with ``since`` once the handlers caught up: nothing is
            lost. One the server cannot replay (no ``seq``) makes room by
            dropping the oldest such, reported as a gap (``overflow``).
        reconnect_after_kick: reconnect even after the server disconnected
            the client on purpose (an admin kick, the rate limit, the
            authentication timeout). Off by default: a kick is terminal, the
            state becomes ``disconnected``. Lost connections (network,
            heartbeat, a server that went away or announced maintenance) are
            always retried.
        retry_sleep: what waits between attempts (``asyncio.sleep``); tests
            inject a fake to run the backoff in virtual time.
    """

    url: str = "http://localhost:5000"
    path: str = "/ws"
    user_id: str | None = None
    organization_id: str | None = None
    token: str | None = field(default=None, repr=False)
    token_provider: TokenProvider | None = field(default=None, repr=False)
    capabilities: tuple[str, ...] = ("replay", "snapshot")
    batch: bool = True
    reconnection: bool = True
    reconnection_attempts: int | None = 5
    reconnection_delay: float = 1.0
    reconnection_delay_max: float = 30.0
    reconnection_max_elapsed: float | None = None
    jitter: float = 0.0
    timeout: float = 20.0
    ack_timeout: float = 10.0
    transports: tuple[str, ...] = ("websocket", "polling")
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    auto_connect: bool = True
    dedupe_window: int = 2048
    resume_store: str | os.PathLike[str] | None = None
    handler_backpressure: Backpressure = DEFAULT_HANDLER_BACKPRESSURE
    reconnect_after_kick: bool = False
    retry_sleep: Sleep | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://", "ws://", "wss://")):
            raise ValueError(f"url: must start with http(s):// or ws(s)://, got {self.url!r}")
        if not self.path.startswith("/"):
            raise ValueError(f"path: must start with '/', got {self.path!r}")
        for name in ("user_id", "organization_id"):
            value = getattr(self, name)
            if value is not None and not is_identifier(value):
                raise ValueError(f"{name}: not a valid protocol identifier: {value!r}")
        if (self.user_id is None) != (self.organization_id is None):
            raise ValueError("user_id and organization_id: give both or neither")
        if self.reconnection_attempts is not None and self.reconnection_attempts < 1:
            raise ValueError("reconnection_attempts: at least 1, or None for unlimited")
        for name in ("reconnection_delay", "reconnection_delay_max", "timeout", "ack_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be positive")
        if self.reconnection_max_elapsed is not None and self.reconnection_max_elapsed <= 0:
            raise ValueError("reconnection_max_elapsed: must be positive, or None for no limit")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter: a fraction from 0 to 1")
        if not set(self.transports) <= {"websocket", "polling"} or not self.transports:
            raise ValueError("transports: 'websocket' and/or 'polling'")
        if self.dedupe_window < 0:
            raise ValueError("dedupe_window: must not be negative")
        object.__setattr__(self, "headers", MappingProxyType(dict(self.headers)))

    @property
    def announced(self) -> tuple[str, ...]:
        """The capabilities sent at authentication: ``capabilities``, plus ``batch`` if on."""
        wanted = tuple(c for c in self.capabilities if c != "batch")
        return (*wanted, "batch") if self.batch or "batch" in self.capabilities else wanted

    @property
    def has_credentials(self) -> bool:
        """Whether the client authenticates by itself after connecting."""
        return self.user_id is not None and self.organization_id is not None

    def replace(self, **changes: Unpack[ConfigOverrides]) -> ClientConfig:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)


class ConfigOverrides(TypedDict, total=False):
    """Fields of :class:`ClientConfig` given as keywords (``IntradayClient(config, url=...)``).

    The same names and types as the dataclass; a test keeps the two in step.
    """

    url: str
    path: str
    user_id: str | None
    organization_id: str | None
    token: str | None
    token_provider: TokenProvider | None
    capabilities: tuple[str, ...]
    batch: bool
    reconnection: bool
    reconnection_attempts: int | None
    reconnection_delay: float
    reconnection_delay_max: float
    reconnection_max_elapsed: float | None
    jitter: float
    timeout: float
    ack_timeout: float
    transports: tuple[str, ...]
    headers: Mapping[str, str]
    auto_connect: bool
    dedupe_window: int
    resume_store: str | os.PathLike[str] | None
    handler_backpressure: Backpressure
    reconnect_after_kick: bool
    retry_sleep: Sleep | None
