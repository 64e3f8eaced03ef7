"""Subscribe with resume: ``since`` for every stream read, fills of holes, every gap said.

A new subscription resumes the positions a previous process left (a
``resume_store``) and probes the streams this process has not read (an
epoch no stream has, ``"?"``: the server answers where the stream is
without replaying, so the first outage is already safe). A restored one,
after a reconnect, resumes every stream it reads. While connected, a hole
the dispatcher finds (:mod:`client_sdk._continuity`) or a section 6
``error`` makes :meth:`Resumer.fill` subscribe again with ``since`` for
that one stream. Around each such request the dispatcher gets markers
in the order of the packets, so the replay keeps its place. What the server
cannot give back is a :class:`~client_sdk.gaps.Gap`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ._dispatch import Dispatcher
from ._requests import parse_ack, request
from ._resume import Position, ResumeState
from ._subscription_book import SubscriptionBook
from ._transport import SocketIOTransport
from .config import ClientConfig
from .exceptions import ConnectionLostError, IntradayError, RequestTimeoutError
from .gaps import Gap, GapReason
from .protocol import (
    Capability,
    ClientEvent,
    StreamPosition,
    SubscribeAck,
    SubscribeRequest,
    parse_stream,
)

__all__ = ["PROBE_EPOCH", "Resumer"]

log = logging.getLogger("client_sdk")

PROBE_EPOCH = "?"
"""The epoch a client sends to learn where a stream is without a replay (section 6:
``since`` of an epoch that is not the stream's replays nothing and answers
``complete: false`` with the stream's epoch and latest seq)."""


class Resumer:
    """Subscribes resuming where the client is, fills holes, and reports gaps.

    Args:
        config: the client's configuration (``ack_timeout``).
        resume: the positions.
        dispatcher: told of each resume in the order of the packets.
        book: the open subscriptions (what a fill asks again).
        on_gap: told of every gap.
        report: told of a fill the server refused.
        capabilities: what the server announced.
        transport: the live transport, if any.
    """

    def __init__(
        self,
        config: ClientConfig,
        *,
        resume: ResumeState,
        dispatcher: Dispatcher,
        book: SubscriptionBook,
        on_gap: Callable[[Gap], Awaitable[None]],
        report: Callable[[IntradayError], None],
        capabilities: Callable[[], frozenset[str]],
        transport: Callable[[], SocketIOTransport | None],
    ) -> None:
        self._config = config
        self._resume = resume
        self._dispatcher = dispatcher
        self._book = book
        self._on_gap = on_gap
        self._report = report
        self._capabilities = capabilities
        self._transport = transport
        self._tasks: set[asyncio.Task[None]] = set()
        self.fills = 0
        """Subscribes sent to fill a hole while connected."""

    async def restore(self, transport: SocketIOTransport) -> None:
        """After a reconnect: every open subscription again, resuming every stream it reads."""
        for entry in self._book.requests():
            await self.subscribe(
                entry.request,
                entry.streams,
                snapshot=entry.snapshot,
                restore=True,
                transport=transport,
            )

    async def subscribe(
        self,
        base: SubscribeRequest,
        streams: list[str],
        *,
        snapshot: bool,
        restore: bool,
        transport: SocketIOTransport | None = None,
    ) -> SubscribeAck:
        """Subscribe, resuming ``streams`` where the client is, and say every gap.

        Raises:
            ConnectionLostError: not connected.
            ServerError: the server refused (a stored position stays for the next try).
        """
        transport = transport or self._transport()
        if transport is None:
            raise ConnectionLostError("not connected")
        capabilities = self._capabilities()
        replay = Capability.REPLAY in capabilities
        since: dict[str, StreamPosition] = {}
        windows: dict[str, bool] = {}
        resumed: dict[str, Position] = {}
        for stream in streams:
            position = self._resume.position(stream) if restore else None
            position = position or self._resume.stored(stream)
            if position is not None:
                resumed[stream] = position
                since[stream] = StreamPosition(seq=position[0], epoch=position[1])
                windows[stream] = True
            elif not restore and self._resume.position(stream) is None:
                since[stream] = StreamPosition(seq=0, epoch=PROBE_EPOCH)
                windows[stream] = False
        wanted = snapshot and not restore and Capability.SNAPSHOT in capabilities
        update: dict[str, Any] = {"since": (since or None) if replay else None, "snapshot": wanted}
        body = base.model_copy(update=update)
        if replay and windows:
            ack = await self._resuming(transport, body, windows)
        else:
            raw = await request(transport, ClientEvent.SUBSCRIBE, body, self._config.ack_timeout)
            ack = parse_ack(SubscribeAck, ClientEvent.SUBSCRIBE, raw)
            for stream in resumed:
                self._resume.adopt(stream)  # nothing to replay it from: said as a gap below
        gaps = self._gaps(ack, streams if restore else list(resumed), resumed, replay)
        gaps += [
            Gap(s, None, None, GapReason.INVALID_POSITION)
            for s in streams
            if not restore and s in self._resume.invalid
        ]
        self._resume.invalid.difference_update(streams)
        for gap in gaps:
            await self._on_gap(gap)
        if gaps and snapshot and restore and Capability.SNAPSHOT in capabilities:
            # The state the gap may have skipped: the latest of each target again.
            refresh = base.model_copy(update={"snapshot": True})
            await request(transport, ClientEvent.SUBSCRIBE, refresh, self._config.ack_timeout)
        return ack

    async def _resuming(
        self, transport: SocketIOTransport, body: SubscribeRequest, windows: dict[str, bool]
    ) -> SubscribeAck:
        dispatcher = self._dispatcher
        ended = False

        def on_answer(answer: Any) -> None:
            # In the order of the packets: what arrived before the ack is queued already.
            nonlocal ended
            ended = True
            ok = isinstance(answer, dict) and answer.get("success") is not False
            dispatcher.end_resume(windows, answer if ok else None)

        dispatcher.begin_resume(windows)
        try:
            raw = await request(
                transport, ClientEvent.SUBSCRIBE, body, self._config.ack_timeout, on_answer
            )
        finally:
            if not ended:
                dispatcher.end_resume(windows, None)
        return parse_ack(SubscribeAck, ClientEvent.SUBSCRIBE, raw)

    def _gaps(
        self,
        ack: SubscribeAck,
        lost_without_replay: list[str],
        resumed: dict[str, Position],
        replay: bool,
    ) -> list[Gap]:
        if not replay:
            # Nothing can be given back: every outage (or stored position) is a gap.
            return [Gap(s, None, None, GapReason.NO_REPLAY) for s in lost_without_replay]
        gaps: list[Gap] = []
        answers = ack.replay or {}
        for stream, (last_seq, last_epoch) in resumed.items():
            result = answers.get(stream)
            if result is not None and result.complete:
                continue
            reason = GapReason.INCOMPLETE
            if result is not None and result.epoch and result.epoch != last_epoch:
                reason = GapReason.EPOCH_CHANGED
            gaps.append(Gap(stream, last_seq, last_epoch, reason, result))
        return gaps

    # -- fills while connected --------------------------------------------------------

    def fill(self, stream: str) -> bool:
        """Subscribe ``stream`` again from its position, soon.

        Returns ``False`` when no open subscription reads the stream.
        """
        if not self._book.reads(stream):
            return False
        task = asyncio.get_running_loop().create_task(self._fill(stream))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _fill(self, stream: str) -> None:
        try:
            await self._fill_once(stream)
        except (ConnectionLostError, RequestTimeoutError):
            pass  # the reconnect resumes every stream from its position
        except IntradayError as exc:
            log.warning("filling %s failed: %s", stream, exc)
            self._report(exc)
        finally:
            self._dispatcher.fill_done(stream)

    async def _fill_once(self, stream: str) -> None:
        transport = self._transport()
        if transport is None or Capability.REPLAY not in self._capabilities():
            return
        position = self._dispatcher.guard.since(stream)
        if position is None:
            return
        channel, _ = parse_stream(stream)
        for entry in self._book.requests():
            if stream not in entry.streams:
                continue
            since = {stream: StreamPosition(seq=position[0], epoch=position[1])}
            body = entry.request.model_copy(
                update={"channels": [channel], "since": since, "snapshot": False}
            )
            self.fills += 1
            log.info("filling %s from seq %s", stream, position[0])
            ack = await self._resuming(transport, body, {stream: True})
            for gap in self._gaps(ack, [], {stream: position}, True):
                await self._on_gap(gap)

    async def stop(self) -> None:
        """Cancel the fills in flight."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
