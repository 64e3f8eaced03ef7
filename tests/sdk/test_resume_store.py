"""The resume file (``ClientConfig.resume_store``): refused in one line, never a silent stop.

A file the client cannot use is refused when the client is made; one that
fails later is reported on ``on_error`` while every message is still
handled; its writes never run on the event loop; a position in it that is
not valid is dropped and reported as a gap; and a second process is
refused the file instead of both overwriting each other's positions.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from client_sdk import IntradayClient
from client_sdk._resume import ResumeState
from client_sdk.admin import AdminClient
from client_sdk.exceptions import IntradayError, ResumeStoreError
from client_sdk.testing import RunningServer, running_server
from tests.delivery.sequence import ORG, Handled, publish
from tests.sdk.conftest import fast_config


def _refusal(path: Path) -> str:
    with pytest.raises(ResumeStoreError) as raised:
        IntradayClient(fast_config("http://127.0.0.1:9", resume_store=path))
    text = str(raised.value)
    assert "\n" not in text
    assert str(path) in text
    return text


def test_a_file_that_cannot_be_written_or_read_is_refused_when_the_client_is_made(
    tmp_path: Path,
) -> None:
    assert "not writable" in _refusal(tmp_path)  # a directory
    assert "not writable" in _refusal(tmp_path / "missing" / "bot.resume")
    corrupt = tmp_path / "corrupt.resume"
    corrupt.write_bytes(b"this is not SQLite" * 100)
    assert "not a resume file" in _refusal(corrupt)


@contextlib.contextmanager
def _read_only(path: Path) -> Iterator[None]:
    """``path`` cannot be written, by this process either: root (CI) ignores mode bits,
    so for root the file is made immutable instead (``chattr +i``)."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        yield
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(path)], check=False).returncode:
        pytest.skip("root writes read-only files, and chattr +i is not available here")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_a_read_only_file_is_refused_when_the_client_is_made(tmp_path: Path) -> None:
    path = tmp_path / "bot.resume"
    ResumeState(path, 10).close()
    with _read_only(path):
        assert "not writable" in _refusal(path)


async def test_a_second_process_is_refused_the_file_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bot.resume"
    code = (
        "import sys, time\n"
        "from client_sdk import IntradayClient\n"
        "from client_sdk.exceptions import ResumeStoreError\n"
        "started = time.monotonic()\n"
        "try:\n"
        f"    IntradayClient(url='http://127.0.0.1:9', resume_store={str(path)!r})\n"
        "except ResumeStoreError as exc:\n"
        "    print(exc); print(round(time.monotonic() - started, 1)); sys.exit(3)\n"
    )
    holder = IntradayClient(fast_config("http://127.0.0.1:9", resume_store=path))
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await asyncio.wait_for(process.communicate(), 60)
    finally:
        await holder.close()
    line, elapsed = out.decode().splitlines()
    assert process.returncode == 3
    assert line == f"resume_store {path}: in use by another process (one resume file per client)"
    assert float(elapsed) < 1.0  # refused, not waited for


async def _handled_with_store(
    admin: AdminClient,
    server: RunningServer,
    path: Path,
    numbers: range,
    *,
    remove_at: int = 0,
    expect: int | None = None,
) -> tuple[Handled, list[IntradayError]]:
    errors: list[IntradayError] = []
    config = fast_config(server.url, path=server.path, resume_store=path)
    async with IntradayClient(config) as client:
        handled = Handled(client)
        client.on(on_error=errors.append)
        await client.subscribe(["alerts"])
        for n in numbers:
            if n == remove_at:
                os.remove(path)  # the fault under test, instant
            await publish(admin, n)
        await handled.until(len(numbers) if expect is None else expect)
        assert client.state == "authenticated"
    return handled, errors


async def test_a_file_removed_while_running_is_reported_once_and_every_message_handled(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bot.resume"
    async with running_server() as server, server.admin() as admin:
        numbers = range(1, 100, 2)  # 50 alerts; the file goes after the 5th
        handled, errors = await _handled_with_store(admin, server, path, numbers, remove_at=11)
    assert handled.numbers == list(numbers)
    assert len(errors) == 1
    assert isinstance(errors[0], ResumeStoreError)
    assert "removed" in str(errors[0])
    assert "\n" not in str(errors[0])


async def test_positions_are_written_off_the_event_loop_and_resume_the_next_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bot.resume"
    writers: set[bool] = set()
    write = ResumeState._write

    def recording(self: ResumeState, *args: Any) -> None:
        writers.add(threading.current_thread() is threading.main_thread())
        write(self, *args)

    monkeypatch.setattr(ResumeState, "_write", recording)
    async with running_server() as server, server.admin() as admin:
        first, errors = await _handled_with_store(admin, server, path, range(1, 21, 2))
        assert (first.numbers, errors) == (list(range(1, 21, 2)), [])
        for n in range(21, 31, 2):  # while no client runs
            await publish(admin, n)
        second, errors = await _handled_with_store(admin, server, path, range(31, 35, 2), expect=7)
    assert writers == {False}  # never on the loop's thread
    assert second.numbers == list(range(21, 35, 2))  # from where the first stopped
    assert second.replayed == list(range(21, 31, 2))
    assert (second.gaps, errors) == ([], [])


async def test_invalid_stored_positions_are_dropped_and_reported_as_gaps(tmp_path: Path) -> None:
    path = tmp_path / "bot.resume"
    ResumeState(path, 10).close()
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO positions VALUES (?, ?, ?)",
            [(f"alerts:{ORG}", "seven", "e1"), (f"kpi:{ORG}", -3, ""), ("nonsense", 1, "e")],
        )
    db.close()
    async with running_server() as server, server.admin() as admin:
        config = fast_config(server.url, path=server.path, resume_store=path)
        async with IntradayClient(config) as client:
            handled = Handled(client)
            await client.subscribe(["alerts", "kpi"])  # no ValidationError
            await handled.until_gaps(2)
            for n in (1, 2):
                await publish(admin, n)
            await handled.until(2)
    assert sorted((g.stream, g.reason) for g in handled.gaps) == [
        (f"alerts:{ORG}", "invalid_position"),
        (f"kpi:{ORG}", "invalid_position"),
    ]
    assert handled.numbers == [1, 2]


async def test_a_refused_subscribe_keeps_the_stored_position_for_the_next(tmp_path: Path) -> None:
    path = tmp_path / "bot.resume"
    async with running_server(room_max_size=1) as server, server.admin() as admin:
        first, _ = await _handled_with_store(admin, server, path, range(1, 6, 2))
        for n in range(7, 17, 2):  # 7..15 while the bot is away
            await publish(admin, n)
        # Another socket holds the only place in the room: the bot is refused once.
        squatter = IntradayClient(fast_config(server.url, path=server.path, user_id="user_2"))
        async with squatter:
            room = await squatter.subscribe(["alerts"])
            config = fast_config(server.url, path=server.path, resume_store=path)
            async with IntradayClient(config) as client:
                handled = Handled(client)
                with pytest.raises(IntradayError):
                    await client.subscribe(["alerts"])
                await room.close()
                await client.subscribe(["alerts"])
                await handled.until(5)
                assert handled.numbers == list(range(7, 17, 2)), "the stored position was lost"
                assert handled.gaps == []
    assert first.numbers == [1, 3, 5]
