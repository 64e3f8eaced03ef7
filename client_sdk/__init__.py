"""intraday-live client SDK.

The protocol models live in :mod:`client_sdk.protocol`; the client itself
arrives with the SDK issue.
"""

from .protocol import PROTOCOL_VERSION

__all__ = ["PROTOCOL_VERSION"]
