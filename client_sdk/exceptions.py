"""The SDK's exceptions: one tree, no foreign exception leaks out.

::

    IntradayError
    ├── ClientClosedError            you closed the client; it will not reconnect
    ├── ConnectionLostError          the network or the server went away
    │   └── ReconnectFailedError     ... and every reconnect attempt failed
    ├── RequestTimeoutError          (also builtins.TimeoutError) no answer in time
    ├── MalformedMessageError        the server sent something off-protocol
    └── ServerError                  the server refused, with a protocol code
        ├── AuthenticationError      AUTH_FAILED
        ├── UnauthorizedError        UNAUTHORIZED
        ├── InvalidMessageError      INVALID_MESSAGE
        ├── MessageTooLargeError     MESSAGE_TOO_LARGE
        ├── RateLimitedError         RATE_LIMIT_EXCEEDED
        ├── SubscriptionFailedError  SUBSCRIPTION_FAILED
        ├── RoomNotFoundError        ROOM_NOT_FOUND
        ├── RoomFullError            ROOM_FULL
        ├── ConnectionLimitError     CONNECTION_LIMIT
        └── InternalServerError      INTERNAL_ERROR

Every :class:`ServerError` carries the protocol ``code``, ``retryable`` (as the
server said, or the code's default), ``details`` and, from the management
API, ``http_status``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .protocol import DEFAULT_RETRYABLE, ErrorCode, ErrorInfo

__all__ = [
    "AuthenticationError",
    "ClientClosedError",
    "ConnectionLimitError",
    "ConnectionLostError",
    "InternalServerError",
    "IntradayError",
    "InvalidMessageError",
    "MalformedMessageError",
    "MessageTooLargeError",
    "RateLimitedError",
    "ReconnectFailedError",
    "RequestTimeoutError",
    "ResumeStoreError",
    "RoomFullError",
    "RoomNotFoundError",
    "ServerError",
    "SubscriptionFailedError",
    "UnauthorizedError",
]


class IntradayError(Exception):
    """Root of every exception the SDK raises."""


class ClientClosedError(IntradayError):
    """The client was closed by its user; use a new one."""


class ConnectionLostError(IntradayError):
    """The connection could not be made or was lost (network, server down)."""


class ReconnectFailedError(ConnectionLostError):
    """Reconnection gave up after its configured attempts."""


class RequestTimeoutError(IntradayError, TimeoutError):
    """No answer within the timeout (also a builtin :class:`TimeoutError`)."""


class ResumeStoreError(IntradayError):
    """The ``resume_store`` file cannot be used: not writable, not a resume file, or in use.

    Raised when the client is made (one line saying which and why); a file that
    fails later (removed, disk full) is reported on ``errors`` and ``on_error``
    instead, and the client goes on with its positions in memory.
    """


class MalformedMessageError(IntradayError):
    """A message from the server did not follow the protocol; it was skipped."""

    def __init__(self, message: str, *, event: str | None = None, raw: Any = None) -> None:
        super().__init__(message)
        self.event = event
        self.raw = raw


class ServerError(IntradayError):
    """The server refused a request or reported an error, with a protocol code."""

    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL_ERROR

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode | None = None,
        retryable: bool | None = None,
        details: Mapping[str, Any] | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code  # type: ignore[misc]  # an instance may be more precise
        self.message = message
        self.retryable = DEFAULT_RETRYABLE[self.code] if retryable is None else retryable
        self.details: dict[str, Any] = dict(details or {})
        self.http_status = http_status

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    @property
    def reason(self) -> str | None:
        """``details.reason`` when the server gave one (``token_expired``, ...)."""
        reason = self.details.get("reason")
        return reason if isinstance(reason, str) else None

    @classmethod
    def from_error(cls, info: ErrorInfo, *, http_status: int | None = None) -> ServerError:
        """The exception of the right subclass for a protocol error object."""
        subclass = _BY_CODE.get(info.code, ServerError)
        return subclass(
            info.message,
            code=info.code,
            retryable=info.retryable,
            details=info.details,
            http_status=http_status,
        )

    @classmethod
    def from_wire(cls, data: Any, *, http_status: int | None = None) -> ServerError:
        """Like :meth:`from_error` from a raw ERROR object; malformed ones become INTERNAL_ERROR."""
        try:
            info = ErrorInfo.model_validate(data)
        except Exception:
            return InternalServerError(f"malformed error object: {str(data)[:200]}")
        return cls.from_error(info, http_status=http_status)


class AuthenticationError(ServerError):
    """``AUTH_FAILED``: bad, missing or expired credentials."""

    code = ErrorCode.AUTH_FAILED


class UnauthorizedError(ServerError):
    """``UNAUTHORIZED``: not allowed (not authenticated, another organization)."""

    code = ErrorCode.UNAUTHORIZED


class InvalidMessageError(ServerError):
    """``INVALID_MESSAGE``: the request did not follow the protocol."""

    code = ErrorCode.INVALID_MESSAGE


class MessageTooLargeError(ServerError):
    """``MESSAGE_TOO_LARGE``: the request exceeded the server's size limit."""

    code = ErrorCode.MESSAGE_TOO_LARGE


class RateLimitedError(ServerError):
    """``RATE_LIMIT_EXCEEDED``: too many requests per second."""

    code = ErrorCode.RATE_LIMIT_EXCEEDED


class SubscriptionFailedError(ServerError):
    """``SUBSCRIPTION_FAILED``: the subscription could not be made."""

    code = ErrorCode.SUBSCRIPTION_FAILED


class RoomNotFoundError(ServerError):
    """``ROOM_NOT_FOUND``: no such room."""

    code = ErrorCode.ROOM_NOT_FOUND


class RoomFullError(ServerError):
    """``ROOM_FULL``: a room is at its member limit."""

    code = ErrorCode.ROOM_FULL


class ConnectionLimitError(ServerError):
    """``CONNECTION_LIMIT``: the server or the organization is at its connection limit."""

    code = ErrorCode.CONNECTION_LIMIT


class InternalServerError(ServerError):
    """``INTERNAL_ERROR``: the server failed; retrying may help."""

    code = ErrorCode.INTERNAL_ERROR


_BY_CODE: dict[ErrorCode, type[ServerError]] = {
    cls.code: cls
    for cls in (
        AuthenticationError,
        UnauthorizedError,
        InvalidMessageError,
        MessageTooLargeError,
        RateLimitedError,
        SubscriptionFailedError,
        RoomNotFoundError,
        RoomFullError,
        ConnectionLimitError,
        InternalServerError,
    )
}
