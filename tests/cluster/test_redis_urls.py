"""Redis URLs: ``redis+sentinel://`` read as python-socketio reads it, and refused clearly.

The format is python-socketio's (its ``AsyncRedisManager`` accepts it too);
our parser must agree with its ``parse_redis_sentinel_url`` on every URL we
accept, so one URL names the same primary for the fan-out and for the store.
"""

from __future__ import annotations

import pytest
from redis.asyncio.sentinel import SentinelConnectionPool
from socketio.redis_manager import parse_redis_sentinel_url

from reference_server.config import ConfigError, load_settings
from reference_server.redis_clients import (
    open_redis,
    parse_redis_url,
    redacted,
    without_addresses,
)

SENTINEL_URLS = [
    "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/0/intraday",
    "redis+sentinel://:s3cret@host-a:26379,host-b:26380,host-c:26381/2/mymaster",
    "redis+sentinel://user:pw@sentinel.internal:5000/0/primary",
]


@pytest.mark.parametrize("url", SENTINEL_URLS)
def test_a_sentinel_url_is_read_as_python_socketio_reads_it(url: str) -> None:
    sentinels, service, options = parse_redis_sentinel_url(url)
    ours = parse_redis_url(url)
    assert ours.is_sentinel
    assert list(ours.sentinels) == sentinels
    assert ours.service == service
    assert ours.db == options.get("db", 0)
    assert ours.password == options.get("password")
    assert ours.username == options.get("username")


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("redis+sentinel://127.0.0.1:26379/0", "service"),
        ("redis+sentinel://127.0.0.1/0/intraday", "host:port"),
        ("redis+sentinel://127.0.0.1:26379/zero/intraday", "number"),
        ("http://127.0.0.1:6379/0", "not a redis://"),
    ],
)
def test_a_malformed_url_is_refused_at_start_up_naming_the_setting(
    url: str, complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_redis_url(url)
    if url.startswith("redis"):
        for key in ("store", "cluster"):
            with pytest.raises(ConfigError, match=f"{key}: .*{complaint}"):
                load_settings(**{key: url})


def test_both_settings_take_a_sentinel_url() -> None:
    url = SENTINEL_URLS[1]
    settings = load_settings(cluster=url)
    assert (settings.cluster, settings.store_url) == (url, url)
    assert load_settings(store=url).store_url == url


async def test_a_sentinel_client_asks_the_sentinels_for_the_primary() -> None:
    client = open_redis(SENTINEL_URLS[1])  # no connection until the first command
    try:
        pool = client.connection_pool
        assert isinstance(pool, SentinelConnectionPool)
        assert pool.service_name == "mymaster"
        assert pool.connection_kwargs["db"] == 2
        assert pool.connection_kwargs["password"] == "s3cret"
        assert client.client().sentinel is None  # a pinned client leaves the sentinels open
    finally:
        await client.aclose()


def test_logs_and_errors_hide_passwords_and_addresses() -> None:
    assert redacted(SENTINEL_URLS[1]) == (
        "redis+sentinel://***@host-a:26379,host-b:26380,host-c:26381/2/mymaster"
    )
    text = "Error 111 connecting to 127.0.0.1:6379. Connect call failed ('10.0.0.7', 6380)."
    assert without_addresses(text) == "Error 111 connecting to ***. Connect call failed ***."
    assert without_addresses("the limit, 100 sockets: 5") == "the limit, 100 sockets: 5"
    assert "redis.internal" not in without_addresses("Timeout connecting to redis.internal:6379")
