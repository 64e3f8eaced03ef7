"""``intraday-live listen``: every message of a subscription, one line each, until told to stop.

Messages go to ``out`` (one readable line, or the envelope as JSON), the
connection's states, gaps and the reason it ended to ``err``. The command
ends on its ``duration``, on a closed ``out`` (a pipe's reader left), when
the client gives up, or when the server ends the connection itself (the
client does not come back after that: see
:mod:`client_sdk._disconnect_policy`).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Coroutine, Sequence
from typing import Any, TextIO

from ._cli_connect import (
    CONNECT_TIMEOUT,
    EXIT_ENDED,
    EXIT_OK,
    PROG,
    NeverConnected,
    connect_first,
    exit_status,
    never_connected,
)
from ._cli_describe import describe
from ._client import IntradayClient
from ._messages import Message
from .config import ClientConfig
from .exceptions import ConnectionLostError, IntradayError, ServerError
from .gaps import Gap
from .protocol import Channel, ConnectionState, Payload, Scope

__all__ = ["listen"]


async def listen(
    config: ClientConfig,
    channels: Sequence[Channel] = (Channel.ALL,),
    where: Scope | None = None,
    *,
    as_json: bool = False,
    duration: float | None = None,
    connect_timeout: float = CONNECT_TIMEOUT,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Print every message of a subscription until ``duration`` passes; return an exit status.

    Args:
        config: who to connect and authenticate as.
        channels: what to subscribe to.
        where: department and queue filter (the organization defaults to the
            authenticated one).
        as_json: print each envelope as one JSON object per line.
        duration: stop after this many seconds (``None``: until cancelled).
        connect_timeout: seconds the first connection may take (retries included).
        out: where messages go (stdout).
        err: where states and errors go (stderr).

    Returns:
        0 when ``duration`` passed or ``out`` was closed (a pipe's reader
        left), 2 when the server refused the credentials or the
        subscription, 3 when the server ended the connection (a kick: the
        client does not come back), 1 for another failure (never connected
        included).
    """
    out = out or sys.stdout
    err = err or sys.stderr
    client = IntradayClient(config)
    closed = asyncio.Event()

    def show(message: Message[Payload]) -> None:
        if closed.is_set():
            return
        if as_json:
            line = json.dumps(message.envelope.to_wire(), separators=(",", ":"))
        else:
            line = describe(message)
        try:
            print(line, file=out, flush=True)
        except BrokenPipeError:
            closed.set()

    def gap(missing: Gap) -> None:
        print(
            f"{PROG}: gap in {missing.stream}: messages may be missing ({missing.reason})",
            file=err,
            flush=True,
        )

    ended = _Ended(client)
    client.add_listener("*", show)
    client.on(on_gap=gap, on_disconnect=ended.lost, on_error=ended.error)
    client.state_changes.subscribe(lambda state: print(f"{PROG}: {state}", file=err, flush=True))
    deadline = asyncio.timeout(duration)
    connected = False
    try:
        async with deadline:
            await connect_first(client, connect_timeout)
            connected = True
            await _subscribe(client, channels, where or Scope())
            names = ",".join(str(c) for c in channels)
            print(f"{PROG}: subscribed to {names}", file=err, flush=True)
            await _first(client.wait_for_state(ConnectionState.FAILED), closed.wait(), ended.wait())
            if closed.is_set():
                _mute(out)
                return EXIT_OK
            if ended.reason is not None:
                print(f"{PROG}: {ended.describe()}", file=err, flush=True)
                return EXIT_ENDED
            assert client.failure is not None
            return exit_status(client.failure, err)
    except NeverConnected:
        return never_connected(client, connect_timeout, err)
    except TimeoutError as exc:
        if deadline.expired():
            return EXIT_OK if connected else never_connected(client, connect_timeout, err)
        if isinstance(exc, IntradayError):
            return exit_status(exc, err)
        raise
    except IntradayError as exc:
        return exit_status(exc, err)
    finally:
        await client.close()


async def _subscribe(client: IntradayClient, channels: Sequence[Channel], where: Scope) -> None:
    """Subscribe, waiting out a reconnect that races the first request."""
    while True:
        try:
            await client.subscribe(
                channels,
                organization_id=where.organization_id,
                department_id=where.department_id,
                queue_name=where.queue_name,
            )
            return
        except ConnectionLostError:
            if client.state is ConnectionState.FAILED or client.failure is not None:
                raise
            await client.wait_for_state(ConnectionState.AUTHENTICATED)


class _Ended:
    """Watches for a final disconnect: the server ended the connection and the client stays out.

    The SDK does not come back after a server's disconnect (an operator's
    kick, the rate limit, the authentication timeout; see
    :mod:`client_sdk._disconnect_policy`): the command must end then, saying
    so, instead of idling for ever.
    """

    def __init__(self, client: IntradayClient) -> None:
        self._client = client
        self._event = asyncio.Event()
        self.reason: str | None = None
        self.last_server_error: ServerError | None = None

    def lost(self, reason: str) -> None:
        # The state is set before on_disconnect runs: DISCONNECTED means no retry.
        if self._client.state is ConnectionState.DISCONNECTED:
            self.reason = reason
            self._event.set()

    def error(self, error: IntradayError) -> None:
        if isinstance(error, ServerError):
            self.last_server_error = error

    async def wait(self) -> None:
        await self._event.wait()

    def describe(self) -> str:
        """The one line that says who ended the connection, and why if the server said."""
        line = f"the server ended the connection ({self.reason}); not reconnecting"
        if self.last_server_error is not None:
            line += f"; its last error: {self.last_server_error}"
        else:
            line += " (an operator's disconnect, or the server's own limits)"
        return line


async def _first(*waits: Coroutine[Any, Any, Any]) -> None:
    """Wait until the first of ``waits`` ends; cancel the others."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _mute(out: TextIO) -> None:
    """After a closed pipe: point the stream at /dev/null so the exit's flush stays quiet."""
    try:
        fd = out.fileno()
    except (OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
