"""The checks, one module per protocol section; importing this package registers them.

Each module registers its checks with :func:`client_sdk.contract.model.check`
as it is imported; :func:`all_checks` returns them in protocol order.
"""

from __future__ import annotations

from ..model import Check, registered_checks
from . import (  # noqa: F401 - imported for their registrations
    acks,
    authentication,
    bridge,
    capabilities,
    delivery,
    envelopes,
    errors,
    http_api,
    identifiers,
    limits,
    replay,
    snapshot,
    subscriptions,
    transport,
)

__all__ = ["all_checks"]


def all_checks() -> tuple[Check, ...]:
    """Every check of the suite, in protocol order."""
    return registered_checks()
