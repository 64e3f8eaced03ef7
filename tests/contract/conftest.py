"""Fixtures of the contract tier: a small-limits reference server, a faulty one, their config."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from client_sdk.contract import ContractConfig
from reference_server.app import ReferenceServer
from tests.contract.faults import Fault
from tests.processes import RedisProcess

ADMIN_TOKEN = "contract-admin-token"
ORGS = ("org_a", "org_b")

SMALL_LIMITS: dict[str, Any] = {
    "admin_token": ADMIN_TOKEN,
    "max_connections_per_org": 5,
    "rate_limit_messages_per_second": 20,
    "max_message_size_bytes": 4096,
    "auth_timeout_ms": 500,
    "room_max_size": 3,
    "store_max_messages": 100,
    "log_subscription_events": False,
    "log_connection_events": False,
}
"""Limits small enough that the destructive checks reach them in well under a second.

A 100-message log lets the suite provoke a ``since`` older than the log reaches.
"""


def contract_config(server: ReferenceServer, **changes: Any) -> ContractConfig:
    """The suite's options for ``server``: both organizations, destructive, short waits."""
    options: dict[str, Any] = {
        "url": server.url,
        "admin_token": ADMIN_TOKEN,
        "organizations": ORGS,
        "destructive": True,
        "auth_timeout_wait": 3.0,
        "request_timeout": 3.0,
        "event_timeout": 3.0,
    }
    options.update(changes)
    return ContractConfig(**options)


@pytest.fixture
async def small_server(make_server: Callable[..., Awaitable[ReferenceServer]]) -> ReferenceServer:
    """A reference server with :data:`SMALL_LIMITS`."""
    return await make_server(**SMALL_LIMITS)


FaultyServerFactory = Callable[[Fault], Awaitable[ReferenceServer]]


@pytest.fixture
async def make_faulty_server(
    make_server: Callable[..., Awaitable[ReferenceServer]],
) -> FaultyServerFactory:
    """A :data:`SMALL_LIMITS` server with ``fault`` built in: ``await make_faulty_server(f)``."""

    async def start(fault: Fault) -> ReferenceServer:
        return await make_server(
            **{**SMALL_LIMITS, **fault.settings},
            wrap_fanout=fault.wrap_fanout,
            wrap_screen=fault.wrap_screen,
            wrap_store=fault.wrap_store,
            wrap_resumer=fault.wrap_resumer,
        )

    return start


@pytest.fixture
async def redis_url(tmp_path: Path) -> AsyncIterator[str]:
    """A throw-away ``redis-server`` of the test's own, saving nothing; its URL."""
    async with RedisProcess(tmp_path) as redis:
        yield redis.url
