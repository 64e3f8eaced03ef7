"""The fault proxy moved to :mod:`client_sdk.verify.proxy` (``intraday-live verify`` uses it).

Kept so that tests written against this path still import it.
"""

from client_sdk.verify.proxy import TcpProxy

__all__ = ["TcpProxy"]
