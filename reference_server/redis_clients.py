"""The Redis clients of every part (store, registry, heartbeat, fan-out), made from one URL.

Two kinds of URL:

- ``redis://[[user]:password@]host:port/db`` (or ``rediss://``): one Redis server.
- ``redis+sentinel://[[user]:password@]host1:port1,host2:port2/db/service_name``:
  python-socketio's format. The client asks the sentinels for the primary of
  ``service_name`` whenever it opens a connection, so after a failover it
  moves to the new primary by itself (redis-py's
  :class:`redis.asyncio.sentinel.Sentinel`). The password is the primary's;
  the sentinels are asked without one.

Every client made here fails fast (short timeouts, a few quick retries on a
broken connection: a pooled connection to a dead primary is retried once on a
fresh one, which asks the sentinels again), because a broadcast or an
admission must be refused with a retryable 503 while Redis is away, not hang.

Errors shown to clients or API callers never carry Redis's address:
:func:`without_addresses` cleans what they get, the full text goes to the log.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from redis.asyncio.retry import Retry

__all__ = [
    "SENTINEL_SCHEME",
    "URL_PATTERN",
    "RedisAddress",
    "open_redis",
    "parse_redis_url",
    "redacted",
    "without_addresses",
]

SENTINEL_SCHEME: Final = "redis+sentinel"

URL_PATTERN: Final = r"(rediss?|redis\+sentinel)://\S+"
"""What a Redis URL setting accepts (checked further by :func:`parse_redis_url`)."""

TIMEOUT_SECONDS: Final = 2.0
"""Connect and read timeout of every command (a WAIT's own timeout is shorter)."""


@dataclass(frozen=True, slots=True)
class RedisAddress:
    """A parsed Redis URL.

    Attributes:
        url: the URL as given.
        sentinels: ``(host, port)`` of each sentinel (empty: a plain ``redis://`` URL).
        service: the Sentinel service name of the primary.
        db: the database number.
        username: the primary's user, if any.
        password: the primary's password, if any.
    """

    url: str
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None

    @property
    def is_sentinel(self) -> bool:
        """Whether the primary is found through Sentinel."""
        return bool(self.sentinels)


def parse_redis_url(url: str) -> RedisAddress:
    """Parse a ``redis://``, ``rediss://`` or ``redis+sentinel://`` URL.

    Raises:
        ValueError: the URL is not one of those, or a sentinel URL lacks its
            hosts, a port, or the service name.
    """
    parts = urlsplit(url)
    if parts.scheme in ("redis", "rediss"):
        if not parts.hostname:
            raise ValueError(f"no host in {redacted(url)}")
        return RedisAddress(url)
    if parts.scheme != SENTINEL_SCHEME:
        raise ValueError(f"not a redis://, rediss:// or redis+sentinel:// URL: {redacted(url)}")
    credentials, _, hosts = parts.netloc.rpartition("@")
    sentinels = []
    for host_port in hosts.split(","):
        host, sep, port = host_port.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"each sentinel needs host:port in {redacted(url)}")
        sentinels.append((host.strip("[]"), int(port)))
    segments = parts.path.split("/")
    db_text = segments[1] if len(segments) > 1 else ""
    service = segments[2] if len(segments) > 2 else ""
    if db_text and not db_text.isdigit():
        raise ValueError(f"the database must be a number in {redacted(url)}")
    if not service:
        raise ValueError(f"name the Sentinel service: {SENTINEL_SCHEME}://HOSTS/DB/SERVICE")
    user, _, password = credentials.partition(":")
    return RedisAddress(
        url,
        tuple(sentinels),
        service,
        int(db_text or 0),
        unquote(user) or None,
        unquote(password) or None,
    )


def _retry() -> Retry:
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError

    # Connection errors only: a timed-out script may have run, and running it again
    # would append the message twice.
    return Retry(
        ExponentialBackoff(cap=0.2, base=0.02), 3, supported_errors=(RedisConnectionError,)
    )


def open_redis(url: str, **options: Any) -> Any:
    """A redis-py asyncio client of the primary ``url`` names (strings decoded).

    ``options`` go to redis-py's client (``health_check_interval``...). The
    type is ``Any``: redis-py's answers are typed loosely; callers check shapes.

    Raises:
        ValueError: the URL is malformed (see :func:`parse_redis_url`).
    """
    # redis-py is imported here: the settings parse these URLs in servers without Redis too.
    import redis.asyncio as aioredis
    from redis.asyncio.sentinel import Sentinel

    address = parse_redis_url(url)
    settings: dict[str, Any] = {
        "socket_timeout": TIMEOUT_SECONDS,
        "socket_connect_timeout": TIMEOUT_SECONDS,
        "decode_responses": True,
        "retry": _retry(),
        **options,
    }
    if not address.is_sentinel:
        return aioredis.from_url(url, **settings)
    timeouts = {k: v for k, v in settings.items() if k.startswith("socket_")}
    sentinel = Sentinel(list(address.sentinels), sentinel_kwargs=timeouts)
    primary = sentinel.master_for(
        address.service,
        redis_class=_sentinel_primary(),
        db=address.db,
        username=address.username,
        password=address.password,
        **settings,
    )
    primary.sentinel = sentinel
    return primary


@functools.cache
def _sentinel_primary() -> type[Any]:
    import redis.asyncio as aioredis

    class SentinelPrimary(aioredis.Redis):
        """A client of the primary that closes its sentinels' connections with its own."""

        sentinel: Any = None  # None on the single-connection clients it makes (client())

        async def aclose(self, close_connection_pool: bool | None = None) -> None:
            await super().aclose(close_connection_pool)
            if self.sentinel is not None:
                await self.sentinel.aclose()

    return SentinelPrimary


def redacted(url: str) -> str:
    """The URL without its password, for logs."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return scheme + sep + rest


_ADDRESS = re.compile(
    r"\(?'?(\[[0-9A-Fa-f:.]+\]|\d{1,3}(?:\.\d{1,3}){3}|[A-Za-z0-9][A-Za-z0-9.-]*)"
    r"(?::\d{1,5}\b|',\s*\d{1,5}\)?)"
)
"""``host:port``, and Python's ``('host', port)`` as redis-py's errors quote it."""
_IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")


def without_addresses(text: str) -> str:
    """``text`` with every ``host:port``, ``('host', port)`` and IPv4 address made ``***``."""
    return _IPV4.sub("***", _ADDRESS.sub("***", text))
