"""The options of a contract run, as one frozen value."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import urlsplit

from ..protocol import is_identifier

__all__ = ["ContractConfig"]


@dataclass(frozen=True, slots=True)
class ContractConfig:
    """Where the server is and how far the suite may go.

    The suite only ever uses the organizations listed here, with generated
    user ids ``contract-<run>-<n>``; it bounds every wait and every burst, and
    it pushes limits (connection count, rate, size) only when ``destructive``.

    Attributes:
        url: the server's base URL, ``http://host:port``.
        organizations: one or more organization ids the suite may use; the
            second one enables the cross-organization checks.
        path: the Socket.IO path.
        admin_token: the management API's bearer token, if it has one.
        jwt_secret: an HS256 secret to sign tokens for the generated users
            (servers in ``jwt`` mode); not needed in ``trust`` mode.
        destructive: run the checks that push limits.
        quick: skip the checks that wait for a server timer (auth timeout,
            repeated rate-limit violations).
        auth_timeout_wait: how long to wait for the server's authentication
            timeout (its default is 10 s).
        request_timeout: seconds allowed for one answer.
        event_timeout: seconds allowed for an expected event to arrive.
        settle: seconds to keep listening after a fence message, so that a
            late duplicate or leak is still seen.
        max_sockets: the most sockets a destructive check may open.
        max_burst: the most events a destructive check may send in a burst.
    """

    url: str
    organizations: tuple[str, ...] = ("contract-org",)
    path: str = "/ws"
    admin_token: str | None = None
    jwt_secret: str | None = None
    destructive: bool = False
    quick: bool = False
    auth_timeout_wait: float = 15.0
    request_timeout: float = 5.0
    event_timeout: float = 5.0
    settle: float = 0.05
    max_sockets: int = 200
    max_burst: int = 2000

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"url: expected http(s)://host:port, got {self.url!r}")
        object.__setattr__(self, "url", self.url.rstrip("/"))
        if not self.organizations:
            raise ValueError("organizations: give at least one organization id")
        for org in self.organizations:
            if not is_identifier(org):
                raise ValueError(f"organizations: {org!r} is not a protocol identifier")
        if len(set(self.organizations)) != len(self.organizations):
            raise ValueError("organizations: give distinct organization ids")
        if not self.path.startswith("/"):
            raise ValueError(f"path: must start with '/', got {self.path!r}")
        for name in ("auth_timeout_wait", "request_timeout", "event_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be positive")
        if self.settle < 0 or self.max_sockets < 1 or self.max_burst < 1:
            raise ValueError("settle, max_sockets and max_burst must be positive")

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    @property
    def socketio_path(self) -> str:
        """The path without its trailing slash, ``/ws``."""
        return self.path.rstrip("/") or "/"

    @property
    def bridge_url(self) -> str:
        """The plain-WebSocket bridge: the Socket.IO path with ``ws(s)://`` and no ``EIO``."""
        parts = urlsplit(self.url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return f"{scheme}://{parts.netloc}{self.socketio_path}"

    @property
    def is_loopback(self) -> bool:
        """Whether the server's host is this machine."""
        host = urlsplit(self.url).hostname or ""
        return host in ("localhost", "::1") or host.startswith("127.")
