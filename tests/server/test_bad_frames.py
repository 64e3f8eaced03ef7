"""Bad input before authentication never reaches the log as a traceback (issue 14).

Raw Engine.IO frames and polling requests, each answered as the protocol
says or closed quietly, counted, and never logged at ERROR: the log stays
(almost) empty however many junk frames arrive.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest

from tests.conftest import ServerFactory
from tests.server.raw_eio import RawEngineIO

JUNK = ["7", "9hello", "x", "", "4", "4x", "40/"]


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.mark.parametrize("frame", JUNK)
async def test_junk_websocket_frame_is_quiet(
    make_server: ServerFactory, caplog: pytest.LogCaptureFixture, frame: str
) -> None:
    server = await make_server()
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    before = server.hub.stats.error_count
    for _ in range(20):
        raw = await RawEngineIO.open(server.url)
        await raw.send(frame)
        if frame.startswith("4"):
            # A Socket.IO-level mistake: the session lives on, and works.
            assert (await raw.connect()).startswith("40{")
            await raw.close()
        else:
            await raw.wait_closed()
    assert errors_logged(caplog) == []
    assert server.hub.stats.error_count - before >= 20
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == []


async def polling_session(http: httpx.AsyncClient) -> str:
    response = await http.get("/ws/", params={"EIO": "4", "transport": "polling"})
    assert response.status_code == 200
    sid: str = json.loads(response.text[1:])["sid"]
    return sid


async def test_oversized_polling_post_is_413(make_server: ServerFactory) -> None:
    server = await make_server()
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        sid = await polling_session(http)
        params = {"EIO": "4", "transport": "polling", "sid": sid}
        size = 16 * 1024 * 1024
        response = await http.post(
            "/ws/", params=params, content=b"4" + b"x" * (size - 1), timeout=10
        )
        assert response.status_code == 413
        body: dict[str, Any] = response.json()
        assert body["error"]["code"] == "MESSAGE_TOO_LARGE"
        # The session is still fine.
        ok = await http.post("/ws/", params=params, content=b"40")
        assert ok.status_code == 200


async def test_junk_polling_payload_and_closed_session_are_400(
    make_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = await make_server()
    caplog.set_level(logging.DEBUG)
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        sid = await polling_session(http)
        params = {"EIO": "4", "transport": "polling", "sid": sid}
        junk = await http.post("/ws/", params=params, content=b"9hello")
        assert junk.status_code == 400
        assert junk.json()["error"]["code"] == "INVALID_MESSAGE"
        gone = await http.post("/ws/", params={**params, "sid": "no-such-session"}, content=b"40")
        assert gone.status_code == 400
        for _ in range(50):  # open and close, then post to the closed session
            sid = await polling_session(http)
            closing = {**params, "sid": sid}
            await http.post("/ws/", params=closing, content=b"1")
            late = await http.post("/ws/", params=closing, content=b"40")
            assert late.status_code == 400
    assert errors_logged(caplog) == []
