"""The server's log formats: readable lines, or one JSON object per line for a log stack.

``--log-format json`` (setting ``log_format = "json"``) writes every record as
one JSON object: ``timestamp`` (UTC, ISO 8601 with milliseconds), ``level``,
``logger``, ``event`` (the message), and the ids that apply among
``socket_id``, ``user_id``, ``organization_id`` and ``message_id``, plus
``exception`` with the traceback when there is one.

The ids come from two places, so that call sites need not repeat them: a
record's own ``extra={...}``, and the ids bound with :func:`bind_ids` for the
current task (the hub binds a socket's ids when it handles one of its events,
and python-engineio runs each incoming event in a task of its own, so they
cannot leak into another socket's lines).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Final, Literal, TextIO

__all__ = [
    "ID_FIELDS",
    "WEBSOCKET_LOGGER",
    "IdSource",
    "JsonFormatter",
    "LogFormat",
    "WebSocketLineFilter",
    "bind_ids",
    "configure_logging",
]

LogFormat = Literal["text", "json"]

ID_FIELDS: Final = ("socket_id", "user_id", "organization_id", "message_id")
"""The ids a JSON line carries when they apply, in this order."""

TEXT_FORMAT: Final = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

IdSource = Callable[[], Mapping[str, str]]
"""Gives the ids when a record is formatted (a socket authenticates mid-task)."""

_NO_IDS: Final[Mapping[str, str]] = MappingProxyType({})
_bound: ContextVar[IdSource] = ContextVar("intraday_log_ids", default=lambda: _NO_IDS)


def bind_ids(source: IdSource) -> None:
    """Tag every record logged from the current task (and tasks it starts) with ``source()``."""
    _bound.set(source)


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring for its keys)."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, object] = {
            "timestamp": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        bound = _bound.get()()
        for name in ID_FIELDS:
            value = getattr(record, name, None) or bound.get(name)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class WebSocketLineFilter(logging.Filter):
    """Drops the INFO line uvicorn and websockets write per WebSocket (accepted, open, closed).

    They are connection events like ours: ``log_connection_events`` off
    silences them too (one line per connection costs CPU on a busy server).
    """

    LINES: Final = frozenset(
        {'%s - "WebSocket %s" [accepted]', "connection open", "connection closed"}
    )

    def filter(self, record: logging.LogRecord) -> bool:
        """``False`` for one of :attr:`LINES` at INFO."""
        return not (record.levelno == logging.INFO and record.msg in self.LINES)


WEBSOCKET_LOGGER: Final = "uvicorn.error"
"""Where uvicorn and its websockets connections log (as configured by :mod:`.transport`)."""


def configure_logging(
    level: int, log_format: LogFormat, stream: TextIO, *, connection_lines: bool = True
) -> None:
    """Send the root logger's records to ``stream`` in ``log_format`` at ``level``.

    Without ``connection_lines``, the transport's one line per WebSocket is dropped.
    """
    handler = logging.StreamHandler(stream)
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    logging.basicConfig(level=level, handlers=[handler], force=True)
    websocket_logger = logging.getLogger(WEBSOCKET_LOGGER)
    for old in [f for f in websocket_logger.filters if isinstance(f, WebSocketLineFilter)]:
        websocket_logger.removeFilter(old)
    if not connection_lines:
        websocket_logger.addFilter(WebSocketLineFilter())
