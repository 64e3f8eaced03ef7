"""Kept only for ``reference_server.cluster.fanout``: its manager's base class moved.

The cluster's manager derives from :class:`FrameWritingManager`; the class is
:class:`~reference_server.transport.ClientManager` now (the transport's
python-socketio manager, no longer a delivery path). Delete this module once
the cluster no longer derives from a python-socketio manager.
"""

from .transport.socketio_server import ClientManager as FrameWritingManager

__all__ = ["FrameWritingManager"]
