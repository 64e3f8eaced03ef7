"""A message logged before a replay read the log, and delivered live after it: sent once.

With a store that answers over the network (Redis), a publish appends its
message, and only when the store's answer comes back delivers it live. A
``subscribe`` with ``since`` in between reads the log *with* that message,
replays it and ends its hold: the live copy, arriving next, must not reach
the socket a second time. (The contract suite's "the replay comes before
newer live messages, each once" saw it twice against the Redis store.)
"""

from __future__ import annotations

import asyncio
from typing import Any

from client_sdk.protocol import ServerEvent
from reference_server.config import ServerSettings
from reference_server.store import MessageStore
from tests.conftest import WAIT, ServerFactory, kpi
from tests.contract.faults import _WrappedStore
from tests.server.test_batching import ORG, MessageFactory, joined, messages, request, settle


class SlowAnswerStore(_WrappedStore):
    """Appends at once, but answers the publisher only when the test says so."""

    def __init__(self, real: MessageStore) -> None:
        super().__init__(real)
        self.hold_answers = False
        self.appended = asyncio.Event()
        self.answer = asyncio.Event()

    async def append(self, stream: str, envelope: dict[str, Any]) -> tuple[int, str]:
        placed = await self._real.append(stream, envelope)
        if self.hold_answers:
            self.appended.set()
            await self.answer.wait()
        return placed


async def test_a_message_replayed_before_its_live_delivery_is_not_sent_again(
    make_server: ServerFactory, make_client: MessageFactory
) -> None:
    stores: list[SlowAnswerStore] = []

    def slow(real: MessageStore | None, settings: ServerSettings) -> MessageStore | None:
        assert real is not None
        stores.append(SlowAnswerStore(real))
        return stores[-1]

    server = await make_server(wrap_store=slow)
    publish = server.publisher.publish
    logged = [
        (await publish(request(ServerEvent.KPI_UPDATE, kpi(ORG, f"q{n}")))).message_id
        for n in range(3)
    ]
    store = stores[0]
    store.hold_answers = True
    late = asyncio.create_task(publish(request(ServerEvent.KPI_UPDATE, kpi(ORG, "q3"))))
    await asyncio.wait_for(store.appended.wait(), WAIT)  # in the log, not yet delivered
    client = await joined(server, make_client, batch=False, filters=[])
    answer = await client.call("subscribe", {"channels": ["kpi"], "since": {f"kpi:{ORG}": 0}})
    assert answer["replay"][f"kpi:{ORG}"]["replayed"] == 4  # the replay carried it
    store.answer.set()
    logged.append((await asyncio.wait_for(late, WAIT)).message_id)  # now delivered live
    logged.append((await publish(request(ServerEvent.KPI_UPDATE, kpi(ORG, "q4")))).message_id)
    await settle(client)
    assert [m["id"] for m in messages(client)] == logged  # each once, in order
