"""The cause of a failed connection, in a user's words.

python-socketio reports most failures of a WebSocket connect as
``Connection error``; the cause is further down the exception chain.
"""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Iterator

from .exceptions import RequestTimeoutError

__all__ = ["explain"]


_STATUS = re.compile(r"status code (\d{3})")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def explain(exc: BaseException, path: str | None = None) -> str:
    """The cause of a failed connection in a user's words, with what to check.

    python-socketio reports most failures of a WebSocket connect as
    ``Connection error``; the cause is further down the exception chain
    (aiohttp's, then the socket's).
    """
    links = list(_chain(exc))
    tls = [link for link in links if isinstance(link, ssl.SSLError)]
    if tls or "[SSL" in str(exc):
        reason = next((r for r in (getattr(link, "reason", None) for link in tls) if r), None)
        shown = f" ({reason})" if reason else ""
        return f"TLS handshake failed{shown}: an https:// URL to a plain-http server?"
    for link in links:
        status = getattr(link, "status", None)
        found = _STATUS.search(str(link))
        if not isinstance(status, int) and found:
            status = int(found.group(1))
        if isinstance(status, int) and status >= 400:
            where = f" on path {path}" if path else ""
            hint = ": no Socket.IO endpoint there (check the path)" if status in (403, 404) else ""
            return f"HTTP {status}{where}{hint}"
        if isinstance(link, socket.gaierror):
            return f"unknown host ({link.strerror or link})"
        if isinstance(link, ConnectionRefusedError):
            return "connection refused: is the server running on this host and port?"
        if isinstance(link, TimeoutError) and not isinstance(link, RequestTimeoutError):
            return "timed out: no answer from the server"
    return str(exc) or type(exc).__name__
