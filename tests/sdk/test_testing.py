"""client_sdk.testing: an in-process reference server that cleans up after itself."""

from __future__ import annotations

import asyncio
import sys
import unittest

import pytest

from client_sdk.admin import AdminClient
from client_sdk.testing import SERVER_EXTRA_HINT, RunningServer, running_server
from reference_server.app import ReferenceServer
from tests.conftest import SioClient


async def assert_port_closed(port: int) -> None:
    """A new TCP connection to ``port`` is refused."""
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_yields_a_listening_server_with_its_addresses() -> None:
    async with running_server() as live:
        assert isinstance(live, RunningServer)
        assert isinstance(live.server, ReferenceServer)
        assert live.server.settings.shutdown_drain_ms == 0
        assert live.port == live.server.port != 0
        assert live.url == f"http://127.0.0.1:{live.port}"
        assert live.path == "/ws"
        assert live.admin_url == f"{live.url}/api/ws"
        assert str(live.port) in repr(live)
        admin = live.admin()
        assert isinstance(admin, AdminClient)
        assert admin.api_url == live.admin_url
        assert (await admin.health()).status == "ok"


async def test_port_is_closed_afterwards() -> None:
    async with running_server() as live:
        port = live.port
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()
        await writer.wait_closed()
    await assert_port_closed(port)


async def test_stops_when_the_block_raises() -> None:
    port = 0
    with pytest.raises(RuntimeError, match="boom"):  # noqa: PT012 - the block is the point
        async with running_server() as live:
            port = live.port
            raise RuntimeError("boom")
    await assert_port_closed(port)


async def test_settings_are_passed_through() -> None:
    async with running_server(path="/live", admin_token="t0ken", shutdown_drain_ms=5) as live:
        assert live.path == "/live"
        assert live.server.settings.shutdown_drain_ms == 5
        client = SioClient(live.url, live.path)
        try:
            await client.connect()
            assert (await client.authenticate())["success"] is True
            async with live.admin() as admin:  # the server's token by default
                assert (await admin.stats()).active_connections == 1
        finally:
            await client.close()


async def test_admin_clients_are_closed_and_clients_disconnected_on_exit() -> None:
    async with running_server() as live:
        admin = live.admin()
        await admin.health()
        client = SioClient(live.url, live.path)
        await client.connect()
        assert (await client.authenticate())["success"] is True
    assert admin.closed
    await asyncio.wait_for(client.disconnected.wait(), 5)
    assert client.received("system:maintenance")


async def test_missing_server_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # As if uvicorn were not installed: the server modules must be imported afresh.
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    monkeypatch.delitem(sys.modules, "reference_server.app")
    with pytest.raises(ImportError, match=r"\[server\]") as caught:
        async with running_server():
            pass
    assert SERVER_EXTRA_HINT in str(caught.value)
    assert "uvicorn" in str(caught.value)
    assert isinstance(caught.value.__cause__, ModuleNotFoundError)


class WorksWithUnittest(unittest.IsolatedAsyncioTestCase):
    """The helper needs no pytest: a plain unittest case can use it."""

    async def test_health(self) -> None:
        async with running_server() as live, live.admin() as admin:
            health = await admin.health()
        assert health.status == "ok"
        assert health.connections == 0
