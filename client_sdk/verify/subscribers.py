"""The two kinds of subscriber a verify run connects: the SDK's client and a raw socket.io one.

Both subscribe to the run's channels of the run's organization and record
every message their handler gets, every gap they are told of and every
disconnect, in their :class:`~.ledger.SubscriberLog`.

- :class:`SdkSubscriber` is an :class:`~client_sdk.IntradayClient`: what an
  application built on this SDK sees (reconnects, resume with ``since``,
  duplicates dropped by id, gaps on ``on_gap``).
- :class:`RawSubscriber` is a bare ``socketio.AsyncClient`` doing only what
  the protocol asks of any client (section 6): after every reconnect it
  subscribes with ``since`` (the last ``seq`` and ``epoch`` of each stream)
  and counts a ``complete: false`` answer, or a server without ``replay``,
  as a gap; on the live-completeness ``error`` it subscribes again with
  ``since``. It drops nothing, so what the server sends twice, it counts twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import socketio

from .._client import IntradayClient
from .._messages import Message
from ..config import ClientConfig
from ..gaps import Gap
from ..protocol import Channel, ControlEvent, ErrorCode, stream_name
from .ledger import SubscriberLog

__all__ = ["RUN_FIELD", "RawSubscriber", "SdkSubscriber", "number_of"]

RUN_FIELD = "verify_run"
"""The payload field that carries the run's id (with ``n``, the message's number)."""


def number_of(data: Any, run_id: str) -> int | None:
    """The number ``n`` of a payload of this run (``None``: not one of this run's)."""
    if not isinstance(data, dict) or data.get(RUN_FIELD) != run_id:
        return None
    n = data.get("n")
    return n if isinstance(n, int) else None


class SdkSubscriber:
    """An :class:`IntradayClient` recording what its handlers get."""

    def __init__(
        self,
        log: SubscriberLog,
        config: ClientConfig,
        channels: Sequence[Channel],
        run_id: str,
    ) -> None:
        self._log = log
        self._channels = list(channels)
        self._run_id = run_id
        self._client = IntradayClient(config)
        self._client.on(on_gap=self._gap, on_disconnect=self._disconnected)
        for channel in self._channels:
            self._client.add_listener(channel, self._message)

    def _message(self, message: Message[Any]) -> None:
        data = message.payload.model_dump(mode="json")
        org = message.target.organization_id or ""
        stream = stream_name(message.channel, org)
        n = number_of(data, self._run_id)
        self._log.delivered(stream, n, message.id, replayed=message.replayed)

    def _gap(self, gap: Gap) -> None:
        self._log.gap(gap.stream, str(gap.reason))

    def _disconnected(self, _reason: str) -> None:
        self._log.disconnects += 1

    @property
    def ready(self) -> bool:
        """Connected with its subscriptions back (after a reconnect: resumed, gaps reported)."""
        return self._client.state == "authenticated"

    async def start(self) -> None:
        """Connect and subscribe."""
        await self._client.connect()
        await self._client.subscribe(self._channels)

    async def close(self) -> None:
        """Disconnect."""
        await self._client.close()


class RawSubscriber:
    """A bare socket.io client doing the protocol's resume by hand."""

    def __init__(
        self,
        log: SubscriberLog,
        url: str,
        path: str,
        auth: dict[str, Any],
        channels: Sequence[Channel],
        run_id: str,
        timeout: float = 5.0,
    ) -> None:
        self._log = log
        self._url = url
        self._path = path
        self._auth = auth
        self._channels = [c.value for c in channels]
        self._org = str(auth["organization_id"])
        self._streams = [stream_name(c, self._org) for c in channels]
        self._run_id = run_id
        self._timeout = timeout
        self._positions: dict[str, tuple[int, str | None]] = {}
        self._replay = False
        self._ready = asyncio.Event()
        self._setups: set[asyncio.Task[None]] = set()
        self._connected_once = False
        self._sio = socketio.AsyncClient(
            # python-engineio would otherwise replace the process's SIGINT handler on the
            # first client made, for good, chaining to whatever handler was there then:
            # a program running the checker would lose its own Ctrl-C handling.
            handle_sigint=False,
            reconnection=True,
            reconnection_attempts=0,
            reconnection_delay=0.1,
            reconnection_delay_max=1,
            randomization_factor=0.2,
        )
        self._sio.on("connect", self._connect)
        self._sio.on("disconnect", self._disconnect)
        self._sio.on("*", self._event)

    async def _connect(self) -> None:
        # Acks come through the loop that runs this handler: set up in a task of its own.
        task = asyncio.create_task(self._setup(again=self._connected_once))
        self._connected_once = True
        self._setups.add(task)
        task.add_done_callback(self._setups.discard)

    async def _disconnect(self, *_: Any) -> None:
        self._log.disconnects += 1
        self._ready.clear()

    async def _setup(self, *, again: bool) -> None:
        try:
            answer = await self._sio.call(
                "authenticate", {**self._auth, "capabilities": ["replay"]}, timeout=self._timeout
            )
            if not isinstance(answer, dict) or answer.get("success") is not True:
                return  # the connection will be retried
            capabilities = (answer.get("server") or {}).get("capabilities") or []
            self._replay = "replay" in capabilities
            await self._subscribe(self._streams if again else [])
            if again and not self._replay:
                # Nothing can be given back: what was published meanwhile is gone.
                for stream in self._streams:
                    self._log.gap(stream, "no_replay")
            self._ready.set()
        except (socketio.exceptions.SocketIOError, TimeoutError):
            with contextlib.suppress(Exception):
                await self._sio.disconnect()  # and connect again from the start

    async def _subscribe(self, resume: list[str]) -> None:
        request: dict[str, Any] = {"channels": self._channels, "organization_id": self._org}
        if resume and self._replay:
            since: dict[str, Any] = {}
            for stream in resume:
                seq, epoch = self._positions.get(stream, (0, None))
                since[stream] = {"seq": seq, "epoch": epoch} if epoch else seq
            request["since"] = since
        answer = await self._sio.call("subscribe", request, timeout=self._timeout)
        if not isinstance(answer, dict) or answer.get("success") is not True:
            raise TimeoutError("subscribe refused")  # treated as a failed connection
        for stream, result in (answer.get("replay") or {}).items():
            if isinstance(result, dict) and result.get("complete") is False:
                self._log.gap(stream, "incomplete")

    async def _event(self, event: str, data: Any = None) -> None:
        if event == ControlEvent.ERROR:
            await self._on_error(data)
            return
        if event == "batch" and isinstance(data, dict):
            for envelope in data.get("messages") or []:
                self._envelope(envelope)
            return
        self._envelope(data)

    def _envelope(self, envelope: Any) -> None:
        if not isinstance(envelope, dict) or "channel" not in envelope:
            return
        org = (envelope.get("target") or {}).get("organization_id")
        stream = f"{envelope['channel']}:{org}"
        if stream not in self._streams:
            return
        seq = envelope.get("seq")
        if isinstance(seq, int):
            known = self._positions.get(stream, (0, None))[0]
            self._positions[stream] = (max(seq, known), envelope.get("epoch"))
        n = number_of(envelope.get("data"), self._run_id)
        self._log.delivered(stream, n, str(envelope.get("id")))

    async def _on_error(self, data: Any) -> None:
        if not isinstance(data, dict) or data.get("code") != ErrorCode.INTERNAL_ERROR:
            return
        stream = (data.get("details") or {}).get("stream")
        if stream in self._streams:  # section 6: missed while connected, resume it
            task = asyncio.create_task(self._resubscribe(stream))
            self._setups.add(task)
            task.add_done_callback(self._setups.discard)

    async def _resubscribe(self, stream: str) -> None:
        with contextlib.suppress(socketio.exceptions.SocketIOError, TimeoutError):
            await self._subscribe([stream])

    @property
    def ready(self) -> bool:
        """Connected with its subscriptions back (after a reconnect: resumed, gaps counted)."""
        return self._ready.is_set()

    async def start(self) -> None:
        """Connect, authenticate and subscribe.

        Raises:
            TimeoutError: not subscribed within the timeout.
        """
        await self._sio.connect(
            self._url, socketio_path=self._path, transports=["websocket"], wait_timeout=5
        )
        async with asyncio.timeout(self._timeout * 2):
            await self._ready.wait()

    async def close(self) -> None:
        """Disconnect for good."""
        with contextlib.suppress(Exception):
            await self._sio.disconnect()
        for task in list(self._setups):
            task.cancel()
