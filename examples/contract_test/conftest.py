"""Run the Intraday protocol's contract suite from your own pytest suite.

Copy the ``pytest_plugins`` line into the ``conftest.py`` at the root of your
tests, start your server, and point pytest at it::

    pytest examples/contract_test --intraday-url http://127.0.0.1:5000 \\
        --intraday-admin-token "$ADMIN_TOKEN" \\
        --intraday-org contract-a --intraday-org contract-b

Every rule of the protocol becomes one test item, named by its section
(``-k delivery_rule`` runs only those, ``-k "not s8_limits"`` leaves some
out); your own tests (``test_my_server.py`` here) run beside them and
share the same options. Without ``--intraday-url`` the plugin adds nothing,
so the rest of your suite still runs offline.

The other options: ``--intraday-path`` (default ``/ws``), ``--intraday-jwt-secret``
(a server in jwt mode), ``--intraday-quick`` (skip the checks that wait for
server timers), ``--intraday-destructive`` (also push the server's limits: never
against production), ``--intraday-auth-timeout-wait``. ``pytest --help`` lists
them under "Intraday live-updates protocol contract suite".

The suite uses only the organizations you give it, with generated users,
and cleans up after itself. Your own async tests need pytest-asyncio.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["client_sdk.contract.pytest_plugin"]


@pytest.fixture
def server_url(request: pytest.FixtureRequest) -> str:
    """The server under test (``--intraday-url``); tests using it skip without one."""
    url = request.config.getoption("intraday_url")
    if not url:
        pytest.skip("no --intraday-url: no server to test")
    return str(url)


@pytest.fixture
def admin_token(request: pytest.FixtureRequest) -> str | None:
    """The management API's token (``--intraday-admin-token``), if any."""
    token = request.config.getoption("intraday_admin_token")
    return str(token) if token else None


@pytest.fixture
def organization(request: pytest.FixtureRequest) -> str:
    """An organization the tests may use: the first ``--intraday-org``."""
    organizations: list[str] = request.config.getoption("intraday_org")
    return organizations[0] if organizations else "contract-org"
