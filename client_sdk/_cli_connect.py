"""How a command of ``intraday-live`` connects first, and the exit status its failure gives.

Once connected, the commands reconnect for ever; a first connection that
does not succeed within ``--connect-timeout`` seconds ends the command with
one line naming the cause. Credentials the server rejects are a usage error
(exit 2), any other failure exit 1.
"""

from __future__ import annotations

import asyncio
from typing import TextIO

from ._client import IntradayClient
from .exceptions import IntradayError, ServerError

__all__ = [
    "CONNECT_TIMEOUT",
    "EXIT_ENDED",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "PROG",
    "NeverConnected",
    "connect_first",
    "exit_status",
    "never_connected",
]

PROG = "intraday-live"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ENDED = 0, 1, 2, 3
CONNECT_TIMEOUT = 10.0
"""Seconds the first connection may take, retries included, before the command gives up."""


class NeverConnected(Exception):
    """The first connection did not succeed within the connect timeout."""


async def connect_first(client: IntradayClient, timeout: float) -> None:
    """The first connection, given ``timeout`` seconds (its own retries included)."""
    try:
        async with asyncio.timeout(timeout) as limit:
            await client.connect()
    except TimeoutError:
        if limit.expired():
            raise NeverConnected from None
        raise


def never_connected(client: IntradayClient, timeout: float, err: TextIO) -> int:
    """Say why the first connection failed (its cause, or the timeout); the exit status."""
    cause = client.failure or client.statistics().last_error
    url = f"{client.config.url} (path {client.config.path})"
    if cause is None:
        print(f"{PROG}: connect to {url}: no answer within {timeout:g} s", file=err, flush=True)
    else:
        print(f"{PROG}: never connected: {cause}", file=err, flush=True)
    if isinstance(cause, ServerError) and not cause.retryable:
        return EXIT_USAGE
    return EXIT_FAILED


def exit_status(error: IntradayError, err: TextIO) -> int:
    """Say ``error`` on ``err``; 2 for a refusal that will not change (credentials), else 1."""
    print(f"{PROG}: {error}", file=err, flush=True)
    if isinstance(error, ServerError) and not error.retryable:
        return EXIT_USAGE  # rejected credentials, another organization
    return EXIT_FAILED
