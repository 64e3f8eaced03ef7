"""Helpers for testing code that uses the SDK, with any test runner.

:func:`running_server` starts a real reference server in the running event
loop, on a free port, and stops it afterwards. It needs the server extra
(``pip install -e '.[server]'`` from a checkout) and nothing else: no pytest, so it
works as well from :class:`unittest.IsolatedAsyncioTestCase` as from a pytest
fixture.

Example with pytest (and pytest-asyncio)::

    @pytest.fixture
    async def server():
        async with running_server(admin_token="test-token") as server:
            yield server

    async def test_health(server):
        async with server.admin() as admin:
            assert (await admin.health()).status == "ok"

Example with unittest::

    class Health(unittest.IsolatedAsyncioTestCase):
        async def test_health(self) -> None:
            async with running_server() as server, server.admin() as admin:
                self.assertEqual((await admin.health()).status, "ok")
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from enum import Enum
from typing import TYPE_CHECKING, Any, Final, Literal

from .admin import AdminClient
from .protocol import API_BASE

if TYPE_CHECKING:
    from reference_server.app import ReferenceServer

__all__ = ["SERVER_EXTRA_HINT", "RunningServer", "running_server"]

SERVER_EXTRA_HINT: Final = "pip install -e '.[server]' (from a checkout)"
"""How to install what :func:`running_server` needs."""


class _ServerToken(Enum):
    SERVER = "server"


class RunningServer:
    """A reference server started by :func:`running_server`.

    Attributes:
        server: the :class:`reference_server.app.ReferenceServer` itself, for
            its settings, its hub (registry, stats) and its publisher.
    """

    def __init__(self, server: ReferenceServer) -> None:
        self.server = server
        self._admins: list[AdminClient] = []

    def __repr__(self) -> str:
        return f"<RunningServer {self.url}>"

    @property
    def url(self) -> str:
        """``http://host:port``: what a client connects to."""
        return self.server.url

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return self.server.port

    @property
    def path(self) -> str:
        """The Socket.IO path (``/ws`` unless configured otherwise)."""
        return self.server.settings.path

    @property
    def admin_url(self) -> str:
        """The management API's base URL, ``http://host:port/api/ws``."""
        return self.url + API_BASE

    def admin(
        self,
        *,
        token: str | Literal[_ServerToken.SERVER] | None = _ServerToken.SERVER,
        timeout: float = 10.0,
    ) -> AdminClient:
        """An :class:`~client_sdk.admin.AdminClient` for this server.

        It is closed when the server stops, if it was not closed before; use
        it with ``async with`` all the same.

        Args:
            token: the admin token to send; by default the server's own, if it
                has one. ``None`` sends no token.
            timeout: seconds allowed per request.
        """
        if token is _ServerToken.SERVER:
            secret = self.server.settings.admin_token
            token = secret.get_secret_value() if secret is not None else None
        client = AdminClient(self.url, token=token, timeout=timeout)
        self._admins.append(client)
        return client

    async def _close_admins(self) -> None:
        for client in self._admins:
            await client.close()
        self._admins.clear()


@contextlib.asynccontextmanager
async def running_server(**settings: Any) -> AsyncIterator[RunningServer]:
    """Run a reference server in this event loop for the duration of the block.

    The server listens on a free port of 127.0.0.1 (``port=0``), installs no
    signal handlers and drains for 0 ms on exit unless ``shutdown_drain_ms``
    is given. On exit it stops: clients are sent ``system:maintenance`` and
    disconnected, and the port is closed.

    Args:
        **settings: server settings, as for ``intraday-live-server`` (for example
            ``admin_token="t"``, ``auth_mode="jwt"``, ``jwt_secret="..."``). As
            for the server itself, ``INTRADAY_*`` environment variables apply to
            the settings not given here.

    Yields:
        The running server, with its URL and a factory of admin clients.

    Raises:
        ImportError: the server extra is not installed.
        reference_server.config.ConfigError: a setting is invalid (a ``ValueError``).

    Example::

        async with running_server(admin_token="t") as server:
            async with server.admin() as admin:
                await admin.publish_kpi(
                    {"organization_id": "org_a", "timestamp": "2026-11-25T10:30:00Z"}
                )
    """
    try:
        from reference_server.app import ReferenceServer
        from reference_server.config import load_settings
    except ModuleNotFoundError as exc:
        raise ImportError(
            f"running_server needs the reference server, which needs {exc.name!r}: "
            f"{SERVER_EXTRA_HINT}"
        ) from exc
    settings.setdefault("port", 0)
    settings.setdefault("shutdown_drain_ms", 0)
    server = ReferenceServer(load_settings(**settings), install_signal_handlers=False)
    await server.start()
    running = RunningServer(server)
    try:
        yield running
    finally:
        try:
            await running._close_admins()
        finally:
            await server.stop()
