"""``socketio_admin_ui``: the official Socket.IO Admin UI's namespace, behind the admin token."""

from __future__ import annotations

import asyncio

import pytest
import socketio

from ..conftest import WAIT, ServerFactory

TOKEN = "ui-token"


async def connect_admin(url: str, password: str) -> socketio.AsyncClient:
    client = socketio.AsyncClient(reconnection=False, handle_sigint=False)
    try:
        await client.connect(
            url,
            socketio_path="ws",
            namespaces=["/admin"],
            transports=["websocket"],
            auth={"username": "admin", "password": password},
            wait_timeout=WAIT,
        )
    except socketio.exceptions.ConnectionError:
        # A refused client keeps its HTTP session open; close it, or it warns when collected.
        session = client.eio.http
        if session is not None and not session.closed:
            await session.close()
        raise
    return client


async def test_the_admin_namespace_takes_the_admin_token_and_reports_the_server(
    make_server: ServerFactory,
) -> None:
    server = await make_server(admin_token=TOKEN, socketio_admin_ui=True)
    stats: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    client = await connect_admin(server.url, TOKEN)
    client.on(
        "server_stats",
        lambda data: stats.done() or stats.set_result(data),
        namespace="/admin",
    )
    try:
        received = await asyncio.wait_for(stats, WAIT + 3)  # sent every two seconds
        assert isinstance(received, dict)
    finally:
        await client.disconnect()


async def test_a_wrong_password_is_refused(make_server: ServerFactory) -> None:
    server = await make_server(admin_token=TOKEN, socketio_admin_ui=True)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await connect_admin(server.url, "wrong")


async def test_without_the_flag_there_is_no_admin_namespace(make_server: ServerFactory) -> None:
    server = await make_server(admin_token=TOKEN)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await connect_admin(server.url, TOKEN)


async def test_a_server_started_after_an_instrumented_one_stopped_works(
    make_server: ServerFactory,
) -> None:
    # instrument() patches python-engineio's socket class process-wide; the
    # stopped server must have undone it.
    instrumented = await make_server(admin_token=TOKEN, socketio_admin_ui=True)
    await instrumented.stop()
    server = await make_server()
    client = socketio.AsyncClient(reconnection=False, handle_sigint=False)
    await client.connect(
        server.url, socketio_path="ws", transports=["websocket"], wait_timeout=WAIT
    )
    try:
        assert client.connected
    finally:
        await client.disconnect()


async def test_it_runs_in_production_mode_as_the_docs_say(make_server: ServerFactory) -> None:
    # docs/operations.md says the Sockets, Rooms and Events pages stay empty
    # (issue 21 item 9): the UI learns that from the features the server announces.
    server = await make_server(admin_token=TOKEN, socketio_admin_ui=True)
    config: asyncio.Future[dict[str, list[str]]] = asyncio.get_running_loop().create_future()
    sockets: list[object] = []
    client = socketio.AsyncClient(reconnection=False, handle_sigint=False)
    client.on("config", lambda data: config.done() or config.set_result(data), namespace="/admin")
    client.on("all_sockets", sockets.append, namespace="/admin")
    try:
        await client.connect(
            server.url, socketio_path="ws", namespaces=["/admin"], transports=["websocket"],
            auth={"username": "admin", "password": TOKEN}, wait_timeout=WAIT,
        )  # fmt: skip
        features = (await asyncio.wait_for(config, WAIT))["supportedFeatures"]
        assert "ALL_EVENTS" not in features  # production mode: no socket, room or event lists
        assert sockets == []
    finally:
        await client.disconnect()
