"""``intraday-live verify``: a delivery checker for any server of the protocol.

Subscribers (the SDK's client and raw socket.io clients) connect through a
loopback fault proxy (:class:`~client_sdk.verify.proxy.TcpProxy`: cut, black
hole, delay, refusal), numbered messages are published through the
management API, optionally the server is restarted by a command the user
gives, and every publish and delivery is recorded. The report says, per
stream: lost (neither delivered nor covered by a reported gap), lost but
reported, duplicated at the handler, out of order, phantom, and the headline
"% delivered under repeated 2 s drops", as a table, JSON and JUnit XML.

From Python::

    from client_sdk.verify import VerifyConfig, run_verify

    result = await run_verify(VerifyConfig(url="http://127.0.0.1:5000", duration=20))
    print(result.total.delivered_percent, result.clean)
"""

from .ledger import StreamFigures
from .proxy import TcpProxy
from .run import FAULTS, VerifyConfig, VerifyResult, run_verify

__all__ = ["FAULTS", "StreamFigures", "TcpProxy", "VerifyConfig", "VerifyResult", "run_verify"]
