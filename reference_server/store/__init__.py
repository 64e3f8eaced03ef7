"""Where messages are kept for replay and snapshots (protocol section 6).

Every message of a stream (``{channel}:{org}``) is appended to the stream's
log before anyone receives it; the append gives it its ``seq`` and the log's
``epoch``. Two implementations share one interface, :class:`MessageStore`:

- :class:`MemoryStore`, the embedded default: bounded per stream by count and
  age, a new epoch for every process start (a restart is a gap clients see).
- :class:`RedisStore` (``--store redis://HOST:PORT/DB``): Redis Streams per
  stream, seq counter and epoch kept in Redis, so a restarted server resumes
  its streams and a resumed client gets ``complete: true``.
"""

from .base import (
    KeyRecord,
    MessageStore,
    ReplaySlice,
    StoredMessage,
    StoreStats,
    StoreUnavailableError,
    StreamHead,
    UnconfirmedAppendError,
    snapshot_key,
)
from .memory import MemoryStore
from .open import StoreWrapper, open_store

__all__ = [
    "KeyRecord",
    "MemoryStore",
    "MessageStore",
    "ReplaySlice",
    "StoreStats",
    "StoreUnavailableError",
    "StoreWrapper",
    "StoredMessage",
    "StreamHead",
    "UnconfirmedAppendError",
    "open_store",
    "snapshot_key",
]
