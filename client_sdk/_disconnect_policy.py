"""Which lost connections the client retries, and which end it.

python-socketio reports why a connection ended with one of python-engineio's
reasons. A server that disconnects a client on purpose (an admin's
``DELETE /connections/{id}``, the rate limit, the authentication timeout)
sends a Socket.IO DISCONNECT (or an Engine.IO CLOSE): the reason is
``"server disconnect"``. Coming straight back would undo the server's
decision, and a client that does so is exactly what a kick is meant to stop;
the JavaScript client does not reconnect after ``"io server disconnect"``
either. So that reason is terminal unless the application asks otherwise
(``ClientConfig.reconnect_after_kick``), with one exception: a server that
announced ``system:maintenance`` and then disconnects is going away for a
restart, and wants its clients back.

Retried: ``"transport close"``, ``"transport error"``, ``"ping timeout"``
(the network or the server process went away) and any other reason this
module does not know. Terminal: ``"server disconnect"`` without a prior
maintenance notice. (A disconnect the client asked for never gets here: the
transport does not report its own close.)
"""

from __future__ import annotations

from typing import Final

__all__ = ["SERVER_DISCONNECT", "is_terminal"]

SERVER_DISCONNECT: Final = "server disconnect"
"""python-socketio's reason for a DISCONNECT (or CLOSE) the server sent."""


def is_terminal(reason: str, *, maintenance_announced: bool, reconnect_after_kick: bool) -> bool:
    """Whether a connection lost for ``reason`` must not be re-established.

    Args:
        reason: python-socketio's disconnect reason.
        maintenance_announced: the server sent ``system:maintenance`` on this
            connection (it is restarting, not kicking).
        reconnect_after_kick: the application wants kicks retried too.

    Example:
        >>> is_terminal("server disconnect", maintenance_announced=False,
        ...             reconnect_after_kick=False)
        True
        >>> is_terminal("transport close", maintenance_announced=False,
        ...             reconnect_after_kick=False)
        False
    """
    if reason == SERVER_DISCONNECT:
        return not (maintenance_announced or reconnect_after_kick)
    return False
