"""A retried publish is one message (section 9's ``Idempotency-Key``), on a single server.

Concurrent POSTs with one key all answer 200 with the one ``message_id`` and
the subscriber gets the message once, under that id; the key with another
body is 409; :class:`AdminClient` retries a publish whose answer was lost or
refused 503 with its key, and the message still arrives once.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from client_sdk import IntradayClient, Message
from client_sdk.admin import AdminClient
from client_sdk.exceptions import ServerError
from client_sdk.protocol import (
    BroadcastRequest,
    BroadcastResult,
    BroadcastTarget,
    KpiPayload,
    ServerEvent,
)
from client_sdk.testing import RunningServer
from reference_server import idempotency
from reference_server.idempotency import Idempotency, MemoryKeys
from tests.delivery.sequence import ORG, TIMESTAMP
from tests.sdk.conftest import fast_config


def kpi(n: int) -> dict[str, Any]:
    return {"organization_id": ORG, "queue_name": "support", "timestamp": TIMESTAMP, "n": n}


class Received:
    """The KPI messages a client handled, by ``n``."""

    def __init__(self, client: IntradayClient) -> None:
        self.messages: list[Message[KpiPayload]] = []
        self.changed = asyncio.Event()
        client.on(on_kpi_update=self._record)

    def _record(self, message: Message[KpiPayload]) -> None:
        self.messages.append(message)
        self.changed.set()

    def numbers(self) -> list[int]:
        return [int((m.payload.model_extra or {})["n"]) for m in self.messages]

    async def until(self, n: int) -> None:
        """Wait until message ``n`` came (published last, it follows the ones before)."""
        async with asyncio.timeout(10):
            while n not in self.numbers():
                self.changed.clear()
                await self.changed.wait()


async def test_concurrent_posts_with_one_key_publish_once_under_one_id(srv: RunningServer) -> None:
    async with IntradayClient(fast_config(srv.url)) as client:
        received = Received(client)
        await client.subscribe(["kpi"])
        async with httpx.AsyncClient(base_url=srv.url, timeout=10) as http:
            by_kind = [
                http.post("/api/ws/broadcast/kpi", json=kpi(1), headers={"Idempotency-Key": "k-1"})
                for _ in range(5)
            ]
            general = [
                http.post(
                    "/api/ws/broadcast",
                    json={"event": "kpi:update", "data": kpi(2)},
                    headers={"Idempotency-Key": "k-2"},
                )
                for _ in range(3)
            ]
            answers = await asyncio.gather(*by_kind, *general)
            assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]
            ids = [a.json()["message_id"] for a in answers]
            assert len(set(ids[:5])) == 1
            assert len(set(ids[5:])) == 1
            assert ids[0] != ids[5]
            assert {a.json()["recipients"] for a in answers} == {1}

            reused = await http.post(
                "/api/ws/broadcast/kpi", json=kpi(2), headers={"Idempotency-Key": "k-1"}
            )
            assert reused.status_code == 409, reused.text
            assert reused.json()["error"]["code"] == "INVALID_MESSAGE"

            bad = await http.post(
                "/api/ws/broadcast/kpi", json=kpi(2), headers={"Idempotency-Key": "no spaces"}
            )
            assert bad.status_code == 400, bad.text

            # Without a key nothing changes: the same body twice is two messages.
            await http.post("/api/ws/broadcast/kpi", json=kpi(3))
            await http.post("/api/ws/broadcast/kpi", json=kpi(3))
            await http.post("/api/ws/broadcast/kpi", json=kpi(4))
        await received.until(4)
        assert sorted(received.numbers()) == [1, 2, 3, 3, 4]
        by_n = {n: m.id for n, m in zip(received.numbers(), received.messages, strict=True)}
        assert (by_n[1], by_n[2]) == (ids[0], ids[5]), "the envelope's id is the message_id"


class LosingTransport(httpx.AsyncBaseTransport):
    """The network between AdminClient and the server: loses answers or refuses, on demand.

    ``plan`` says what each POST meets, in order: ``"lost"`` reaches the
    server but its answer is lost (a timeout), ``"503"`` is refused without
    reaching it; after the plan, POSTs pass.
    """

    def __init__(self, plan: list[str]) -> None:
        self._real = httpx.AsyncHTTPTransport()
        self.plan = plan
        self.keys: list[str | None] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST":
            return await self._real.handle_async_request(request)
        self.keys.append(request.headers.get("Idempotency-Key"))
        fate = self.plan.pop(0) if self.plan else "pass"
        if fate == "503":
            body = b'{"success": false, "error": {"code": "INTERNAL_ERROR", "message": "away"}}'
            return httpx.Response(503, content=body, request=request)
        response = await self._real.handle_async_request(request)
        if fate == "lost":
            await response.aread()
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return response

    async def aclose(self) -> None:
        await self._real.aclose()


@pytest.mark.parametrize("plan", [["lost", "lost"], ["503", "lost", "503"]])
async def test_admin_client_retries_with_its_key_and_the_message_arrives_once(
    srv: RunningServer, plan: list[str]
) -> None:
    transport = LosingTransport(list(plan))
    admin = AdminClient(srv.url, transport=transport, retry_delay=0.01)
    async with IntradayClient(fast_config(srv.url)) as client, admin:
        received = Received(client)
        await client.subscribe(["kpi"])
        result = await admin.publish_kpi(kpi(1))
        await admin.publish_kpi(kpi(2))
        await received.until(2)
    assert received.numbers() == [1, 2]
    assert received.messages[0].id == result.message_id
    first = transport.keys[: len(plan) + 1]
    assert len(set(first)) == 1, "every attempt of one publish carries one key"
    assert first[0]
    assert transport.keys[-1] != first[0], "each publish has a key of its own"


async def test_admin_client_gives_up_after_its_attempts(srv: RunningServer) -> None:
    transport = LosingTransport(["503"] * 3)
    async with AdminClient(
        srv.url, transport=transport, publish_attempts=3, retry_delay=0.01
    ) as admin:
        with pytest.raises(ServerError) as caught:
            await admin.publish_kpi(kpi(1))
    assert caught.value.http_status == 503
    assert len(transport.keys) == 3


async def test_a_key_answers_for_the_window_and_then_publishes_again() -> None:
    now = [0.0]
    idempotency = Idempotency(MemoryKeys(clock=lambda: now[0]), window_seconds=300)
    sent: list[str] = []

    async def publish(request: BroadcastRequest, message_id: str) -> BroadcastResult:
        sent.append(f"m{len(sent)}")
        return BroadcastResult(message_id=sent[-1], recipients=1)

    request = BroadcastRequest.model_validate({"event": "kpi:update", "data": kpi(1)})
    first = await idempotency.publish("k", request, publish)
    now[0] = 299.0
    assert (await idempotency.publish("k", request, publish)).message_id == first.message_id
    now[0] = 301.0
    assert (await idempotency.publish("k", request, publish)).message_id != first.message_id
    assert sent == ["m0", "m1"]


async def _claim_as_a_dead_owner(server: Any, key: str, seconds: float) -> None:
    """Claim ``key`` for ``kpi(1)`` as an owner that died mid-publish (as ``dead-owners-id``):
    a claim nobody will settle, held ``seconds`` until it expires. Made once the test's
    subscriber is in, so that a slow start cannot let it expire before the test's POST."""
    request = BroadcastRequest(event=ServerEvent.KPI_UPDATE, data=kpi(1), target=BroadcastTarget())
    await server.app._keys.claim_key(
        key, idempotency.fingerprint(request), "dead", seconds, "dead-owners-id"
    )


async def test_a_request_whose_caller_left_while_a_dead_claim_held_its_key_publishes_nothing(
    make_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(idempotency, "PENDING_SECONDS", 1.0)
    server = await make_server()
    async with IntradayClient(fast_config(server.url, path=server.settings.path)) as client:
        received = Received(client)
        await client.subscribe(["kpi"])
        await _claim_as_a_dead_owner(server, "k-dead", 1.0)
        async with httpx.AsyncClient(base_url=server.url, timeout=0.3) as http:
            with pytest.raises(httpx.TimeoutException):  # the publisher gives up on 1
                await http.post(
                    "/api/ws/broadcast/kpi", json=kpi(1), headers={"Idempotency-Key": "k-dead"}
                )
            await http.post("/api/ws/broadcast/kpi", json=kpi(2))
            # Past the claim's expiry (the server's own timer; its waiters look every 0.1 s
            # at most): a waiter still there would publish 1 now, after 2, for nobody.
            await asyncio.sleep(1.5)
            await http.post("/api/ws/broadcast/kpi", json=kpi(3))
        await received.until(3)
    assert received.numbers() == [2, 3]


async def test_a_request_taking_over_a_dead_claim_publishes_under_the_claims_message_id(
    make_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The owner died mid-publish, maybe after logging its message: the waiter that
    # takes the key over publishes it as the same message_id, so a copy logged
    # twice is one message to subscribers' dedupe, never a second alert.
    monkeypatch.setattr(idempotency, "PENDING_SECONDS", 0.5)
    server = await make_server()
    async with IntradayClient(fast_config(server.url, path=server.settings.path)) as client:
        received = Received(client)
        await client.subscribe(["kpi"])
        await _claim_as_a_dead_owner(server, "k-taken", 0.5)
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            answer = await http.post(
                "/api/ws/broadcast/kpi", json=kpi(1), headers={"Idempotency-Key": "k-taken"}
            )
            again = await http.post(
                "/api/ws/broadcast/kpi", json=kpi(1), headers={"Idempotency-Key": "k-taken"}
            )
        await received.until(1)
    assert answer.status_code == 200, answer.text
    assert answer.json()["message_id"] == "dead-owners-id"
    assert again.json() == answer.json()  # settled: the retry is answered, nothing sent again
    assert [m.id for m in received.messages] == ["dead-owners-id"]
