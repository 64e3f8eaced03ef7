"""Section 1: Socket.IO v5 on the path, over WebSocket and over HTTP long-polling."""

from __future__ import annotations

import json
from typing import Any

from ...protocol import AuthSuccess, PingAck
from .._context import CheckContext
from .._expect import model, require
from ..model import CheckFailure, Section, check

__all__: list[str] = []


async def _handshake_and_ping(ctx: CheckContext, transport: str) -> None:
    peer = await ctx.socket(transports=[transport], label=transport)
    require(
        peer.transport_name == transport,
        f"a Socket.IO connection over {transport}",
        sent=f"connect with transports=[{transport!r}]",
        received=peer.transport_name,
    )
    model(AuthSuccess, peer.identity, f"the authenticate ack over {transport}")
    sent = {"timestamp": 1}
    ack = await peer.call("client:ping", sent)
    model(PingAck, ack, f"the client:ping ack over {transport}", sent=sent)


@check(Section.TRANSPORT, "Socket.IO handshake over WebSocket on the path")
async def websocket_handshake(ctx: CheckContext) -> None:
    """Connect with the WebSocket transport only, authenticate and ping."""
    await _handshake_and_ping(ctx, "websocket")


@check(Section.TRANSPORT, "Socket.IO handshake over HTTP long-polling on the path")
async def polling_handshake(ctx: CheckContext) -> None:
    """Connect with the polling transport only (the fallback), authenticate and ping."""
    await _handshake_and_ping(ctx, "polling")


def _open_packet(text: str, url: str) -> dict[str, Any]:
    # An Engine.IO v4 polling payload: packets separated by \x1e; OPEN is "0" + JSON.
    first = text.split("\x1e", 1)[0]
    if not first.startswith("0"):
        raise CheckFailure("an Engine.IO OPEN packet ('0{...}')", sent=f"GET {url}", received=text)
    try:
        packet = json.loads(first[1:])
    except ValueError:
        raise CheckFailure("an Engine.IO OPEN packet", sent=f"GET {url}", received=text) from None
    if not isinstance(packet, dict):
        raise CheckFailure("an Engine.IO OPEN object", sent=f"GET {url}", received=text)
    return packet


@check(Section.TRANSPORT, "Engine.IO v4 open packet with heartbeat settings", auth=False)
async def engineio_open_packet(ctx: CheckContext) -> None:
    """A raw polling GET on the path (``EIO=4``) opens a session announcing the heartbeat."""
    path = ctx.config.socketio_path + "/"
    url = f"{ctx.config.url}{path}?EIO=4&transport=polling"
    response = await ctx.http.get(path, params={"EIO": "4", "transport": "polling"})
    require(
        response.status_code == 200,
        "200 to the Engine.IO open request",
        sent=f"GET {url}",
        received=f"{response.status_code} {response.text[:300]}",
    )
    packet = _open_packet(response.text, url)
    try:
        for key in ("pingInterval", "pingTimeout"):
            value = packet.get(key)
            require(
                isinstance(value, int) and value > 0,
                f"a positive integer {key} (ms) in the OPEN packet",
                sent=f"GET {url}",
                received=packet,
            )
        upgrades = packet.get("upgrades")
        require(
            isinstance(upgrades, list) and "websocket" in upgrades,
            "'websocket' among the OPEN packet's upgrades (polling is the fallback)",
            sent=f"GET {url}",
            received=packet,
        )
        require(
            isinstance(packet.get("sid"), str),
            "an Engine.IO sid",
            sent=f"GET {url}",
            received=packet,
        )
    finally:
        sid = packet.get("sid")
        if isinstance(sid, str):  # close the session: an Engine.IO CLOSE packet
            params = {"EIO": "4", "transport": "polling", "sid": sid}
            await ctx.http.post(path, params=params, content=b"1")
