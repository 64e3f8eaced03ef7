"""The delivery tier uses the SDK tier's fixtures (``srv``, ``admin``, ``proxy``, ``make_client``).

Its server beats its heart every second, so a black-holed client notices
within about a second and a half.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.sdk.conftest import admin, make_client, proxy, srv

__all__ = ["admin", "make_client", "proxy", "server_settings", "srv"]


@pytest.fixture
def server_settings() -> dict[str, Any]:
    """A quick heartbeat: the black-hole test waits for it."""
    return {"ping_interval_ms": 1000, "ping_timeout_ms": 500}
