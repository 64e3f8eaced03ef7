"""Every wire module of the server: what reaches a socket and what leaves it.

- session admission: :mod:`.admission` (bare and overflow Engine.IO sessions,
  the CONNECT rate), with the polling grace in :mod:`.socketio_server`;
- ingress: :mod:`.guard` (the ASGI guard in front of python-engineio),
  :mod:`.ingress` (screening and dispatch of Socket.IO packets),
  :mod:`.bridge` (the plain-WebSocket bridge's reader);
- the way out: :mod:`.fanout` (a broadcast handed to each recipient's outbox),
  :mod:`.outbox` (one per socket, the only way bytes leave),
  :mod:`.codecs`, :mod:`.frames`, :mod:`.batching`;
- the seams: :mod:`.socketio_server` (every private python-socketio and
  python-engineio hook, in one table) and :mod:`.uvicorn_server` (every uvicorn and
  websockets insider, in one table: hooks only, no policy);
- before any of them: :mod:`.http_guard`, bounds on TCP connections before a
  request reaches the application (a header deadline, a cap, the file limit,
  quiet accept failures);
- the end: :mod:`.drain`, the graceful shutdown;
- beside them: :mod:`.admin_ui`, the official Socket.IO Admin UI.

No module outside this package imports socketio, engineio, uvicorn's
protocols or websockets.
"""

from .admin_ui import instrument_for_admin_ui
from .bridge import BridgeLink, origin_allowed, serve_bridge
from .drain import DrainingServer
from .fanout import OutboxFanout
from .guard import EngineIOGuard
from .message import Message
from .outbox import Outbox, OutboxPolicy, flush_batches
from .socketio_server import IntradaySocketServer, SocketIOLink, create_socketio_server
from .uvicorn_server import WebSocketIndex, websocket_protocol

__all__ = [
    "BridgeLink",
    "DrainingServer",
    "EngineIOGuard",
    "IntradaySocketServer",
    "Message",
    "Outbox",
    "OutboxFanout",
    "OutboxPolicy",
    "SocketIOLink",
    "WebSocketIndex",
    "create_socketio_server",
    "flush_batches",
    "instrument_for_admin_ui",
    "origin_allowed",
    "serve_bridge",
    "websocket_protocol",
]
