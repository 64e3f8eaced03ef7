"""In-process receive cost: the SDK's path against a bare ``socketio.AsyncClient``, no server.

Question answered: how much CPU does the SDK add per message on top of
python-socketio, measured without a network, a server or a publisher sharing
the machine (``bench/sdk_receive.py`` measures end to end, but on a busy
2-core box its figures move by 20-30 % between runs).

Both clients are fed the same pre-encoded Engine.IO message strings
(``42["kpi:update",{envelope}]``, envelopes as the reference server builds
them, with ``seq`` and ``epoch``) through ``AsyncClient._handle_eio_message``,
each in a task of its own as python-engineio does:

* ``bare`` -- ``socketio.AsyncClient`` with a counting handler on ``kpi:update``;
* ``sdk``  -- the SDK's own ``SocketIOTransport`` feeding a started
  ``Dispatcher`` with a counting ``kpi:update`` listener: the full receive
  path from the socket.io event to the handler (parse, dedupe, replay
  marks, position).

The figure is CPU microseconds per message (``time.process_time``), median
of ``--rounds`` interleaved runs, and the ratio sdk/bare.

Run (from the repo root)::

    python bench/sdk_receive_inproc.py                  # N=20000, 5 rounds, one at a time
    python bench/sdk_receive_inproc.py --burst 200      # 200 messages arrive at once
    python bench/sdk_receive_inproc.py --profile        # plus a cProfile of the SDK path
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import statistics
import time
import uuid
from typing import Any

import socketio
from sdk_receive import kpi_payload  # bench/ is the script's directory: on sys.path

from client_sdk._backpressure import BUFFER
from client_sdk._dispatch import Dispatcher
from client_sdk._resume import ResumeState
from client_sdk._routing import Router
from client_sdk._transport import SocketIOTransport
from client_sdk.exceptions import IntradayError
from client_sdk.protocol import Scope, ServerEvent, build_envelope
from client_sdk.protocol.timestamps import format_timestamp, utc_now

ORG = "bench"


def encoded_messages(count: int) -> list[str]:
    """``count`` Engine.IO message strings, each one ``kpi:update`` event."""
    epoch = uuid.uuid4().hex
    out = []
    for i in range(count):
        stamp = format_timestamp(utc_now())
        envelope = build_envelope(
            message_id=uuid.uuid4().hex,
            event=ServerEvent.KPI_UPDATE,
            timestamp=stamp,
            target=Scope(ORG, None, f"queue-{i % 4}"),
            data=kpi_payload(i, stamp),
            seq=i + 1,
            epoch=epoch,
        )
        out.append("2" + json.dumps(["kpi:update", envelope], separators=(",", ":")))
    return out


class Counter:
    """Counts receipts; ``done`` is set at ``expected``."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.done = asyncio.Event()
        self.wanted = 0
        self.reached: asyncio.Future[None] | None = None

    def hit(self, *_: Any) -> None:
        self.count += 1
        if self.count >= self.expected:
            self.done.set()
        if self.reached is not None and self.count >= self.wanted:
            self.reached.set_result(None)
            self.reached = None

    async def until(self, count: int) -> None:
        """Wait (idle, as the loop is between network reads) until ``count`` arrived."""
        if self.count < count:
            self.wanted = count
            self.reached = asyncio.get_running_loop().create_future()
            await self.reached


async def _feed(
    client: socketio.AsyncClient, messages: list[str], counter: Counter, burst: int
) -> float:
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()
    cpu0 = time.process_time()
    # python-engineio runs each message in a task of its own; so do we, in
    # bursts (1: each message handled before the next arrives, as on a feed
    # slower than the client), never more than the dispatcher's bound.
    for start in range(0, len(messages), burst):
        for data in messages[start : start + burst]:
            task = loop.create_task(client._handle_eio_message(data))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await counter.until(min(start + burst, len(messages)))
    await asyncio.wait_for(counter.done.wait(), 60)
    return time.process_time() - cpu0


async def run_bare(messages: list[str], burst: int) -> float:
    """CPU seconds for a bare client to take ``messages``."""
    counter = Counter(len(messages))
    client = socketio.AsyncClient(reconnection=False, handle_sigint=False)
    client.on("kpi:update", counter.hit)
    return await _feed(client, messages, counter, burst)


async def _noop_error(error: IntradayError) -> None:
    raise AssertionError(f"unexpected error: {error!r}")


def _handler_failed(where: str, exc: Exception) -> None:
    raise AssertionError(f"handler failed in {where}: {exc!r}")


async def run_sdk(
    messages: list[str], burst: int, profiler: cProfile.Profile | None = None
) -> float:
    """CPU seconds for the SDK's transport and dispatcher to take ``messages``."""
    counter = Counter(len(messages))
    dispatcher = Dispatcher(
        1000,
        resume=ResumeState(None, 1000),
        policy=BUFFER(10_000),
        read_whole=lambda _stream: False,
        fill=lambda _stream: False,
        on_error=_noop_error,
        on_handler_error=_handler_failed,
        on_overflow=lambda _stream: None,
        router=Router(_handler_failed),
    )
    dispatcher.add_listener(ServerEvent.KPI_UPDATE, counter.hit)
    dispatcher.start()
    transport = SocketIOTransport(dispatcher.receive, lambda _reason: None)
    if profiler is not None:
        profiler.enable()
    try:
        return await _feed(transport._client, messages, counter, burst)
    finally:
        if profiler is not None:
            profiler.disable()
        await dispatcher.stop()
        assert dispatcher.received == len(messages), dispatcher.received
        assert dispatcher.dropped == 0
        assert dispatcher.malformed == 0


async def _main(args: argparse.Namespace) -> None:
    messages = encoded_messages(args.messages)
    burst: int = args.burst
    await run_sdk(messages[:500], burst)  # warm-up: imports, pydantic's first calls
    await run_bare(messages[:500], burst)
    results: dict[str, list[float]] = {"sdk": [], "bare": []}
    for _ in range(args.rounds):
        results["sdk"].append(await run_sdk(messages, burst) / len(messages) * 1e6)
        results["bare"].append(await run_bare(messages, burst) / len(messages) * 1e6)
    print(f"N={args.messages} burst={burst} rounds={args.rounds}  CPU us/msg (median; per run)")
    for kind, values in results.items():
        runs = ", ".join(f"{v:.1f}" for v in values)
        print(f"  {kind:<5} {statistics.median(values):7.1f}   {runs}")
    ratio = statistics.median(results["sdk"]) / statistics.median(results["bare"])
    print(f"  ratio sdk/bare {ratio:.2f}")
    if args.profile:
        profiler = cProfile.Profile()
        await run_sdk(messages, burst, profiler)
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(args.profile_top)
        print(out.getvalue())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--burst", type=int, default=1, help="messages arriving at once")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sort", default="tottime", help="pstats sort key")
    parser.add_argument("--profile-top", type=int, default=30)
    asyncio.run(_main(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
