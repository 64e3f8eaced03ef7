"""What may travel in a ``batch`` event (protocol section 5), and how a batch is cut.

When a batch goes out is the outbox's decision (:mod:`.outbox`: a message to
an idle socket goes at once, the window only gathers what arrives while
earlier writes are pending); this module holds the two rules it applies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from client_sdk.protocol import ServerEvent

__all__ = ["MESSAGE_EVENTS", "batchable", "split_encoded"]

MESSAGE_EVENTS = frozenset(e.value for e in ServerEvent)
"""The events whose envelopes may travel in a ``batch``; every other event goes singly."""

T = TypeVar("T")


def batchable(event: str, data: Any) -> bool:
    """Whether ``event`` may wait in a batch: a message, and none that needs its own ack."""
    return event in MESSAGE_EVENTS and isinstance(data, dict) and not data.get("requires_ack")


def split_encoded(messages: list[T], encode: Callable[[list[T]], str], limit: int) -> list[str]:
    """``messages`` encoded as one batch, or as several in order if one would exceed ``limit``.

    A client's transport has a frame limit of its own (aiohttp's WebSocket
    takes 4 MiB by default), so a batch frame stays within the server's
    stated ``max_message_size_bytes`` unless it holds a single message.
    """
    text = encode(messages)
    if len(text) <= limit or len(messages) == 1:
        return [text]
    half = len(messages) // 2
    return split_encoded(messages[:half], encode, limit) + split_encoded(
        messages[half:], encode, limit
    )
