"""``intraday-live-server``: one line naming the fix for each mistake, every setting a flag.

Subprocess tests: the exit status, the line on stderr, and no traceback.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import websockets

from reference_server.config import ServerSettings, load_settings

ROOT = Path(__file__).resolve().parents[2]
PROCESS_TIMEOUT = 40.0


def _environment(**extra: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("INTRADAY_")}
    return {**environment, "PYTHONUNBUFFERED": "1", **extra}


def run(*args: str, code: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """``intraday-live-server ARGS``; ``code`` runs first in the same interpreter."""
    prelude = f"{code}\n" if code else ""
    script = f"{prelude}import sys\nfrom reference_server.cli import main\nsys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        env=_environment(**env),
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        check=False,
    )


def assert_one_line(result: subprocess.CompletedProcess[str], status: int, *words: str) -> None:
    assert result.returncode == status, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("intraday-live-server")]
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_a_taken_port_is_one_line_naming_the_fix() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("serve", "--port", str(port))
    assert_one_line(result, 2, f"127.0.0.1:{port}", "in use", "--port", "PORT=")


def test_the_demo_with_a_taken_port_is_one_line_too() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = run("demo", "--port", str(taken.getsockname()[1]), "--duration", "1")
    assert_one_line(result, 2, "in use", "--port")


def test_watch_without_a_server_is_one_line_naming_the_cause() -> None:
    with socket.socket() as dead:
        dead.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{dead.getsockname()[1]}"
        result = run("watch", "--url", url, "--duration", "2")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "never connected" in result.stderr
    assert "connection refused" in result.stderr


def test_without_the_server_extra_the_fix_is_named() -> None:
    blocked = "import sys\nsys.modules['pydantic_settings'] = None"
    result = run("serve", "--port", "0", code=blocked)
    assert_one_line(result, 2, "pydantic_settings", "[server]")


def test_an_unknown_log_level_is_refused() -> None:
    result = run("serve", "--log-level", "loud")
    assert result.returncode == 2
    assert "--log-level" in result.stderr
    assert "Traceback" not in result.stderr


def test_log_level_can_come_from_a_config_file(tmp_path: Path) -> None:
    config = tmp_path / "server.toml"
    config.write_text('log_level = "debug"\n')
    assert load_settings(config).log_level == "debug"


def test_a_bad_environment_variable_is_named() -> None:
    result = run("serve", INTRADAY_PORT="notaport")
    assert_one_line(result, 2, "INTRADAY_PORT", "notaport")


def test_every_setting_is_a_flag_of_serve_with_help() -> None:
    result = run("serve", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for name in ServerSettings.model_fields:
        assert f"--{name.replace('_', '-')}" in text, name
    assert "TCP port (0 picks a free one)" in text
    # The settings' docstrings are reST; a terminal shows them plain (issue 21 item 11).
    assert "``" not in text
    assert not re.search(r":(mod|class|func|attr|data|meth):`", text), text
    assert "json: one JSON object per line (see reference_server.logformat)" in text


def test_flags_override_every_setting() -> None:
    result = run(
        "serve", "--room-max-size", "7", "--no-compression-enabled", "--cors-origins", "a,b",
        "--help",
    )  # fmt: skip
    assert result.returncode == 0  # parsed; the values themselves go through load_settings
    assert load_settings(room_max_size=7, compression_enabled=False).room_max_size == 7


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == "intraday-live-server 0.1.0"


@pytest.mark.parametrize("token", [None, "banner-token"])
async def test_every_url_the_banner_prints_answers(token: str | None) -> None:
    # Issue 21 item 6: the banner printed ws://HOST:PORT/bridge, refused 403
    # (the bridge is on the Socket.IO path), and left /admin and /metrics out.
    extra = ["--admin-token", token] if token else []
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "reference_server.cli", "serve", "--port", "0", *extra,
        stderr=asyncio.subprocess.PIPE, cwd=ROOT, env=_environment(),
    )  # fmt: skip
    assert process.stderr is not None
    lines: list[str] = []
    try:
        while not any(line.lstrip().startswith("metrics") for line in lines):
            line = await asyncio.wait_for(process.stderr.readline(), PROCESS_TIMEOUT)
            assert line, lines
            lines.append(line.decode())
        printed = re.findall(
            r"^\s+(\w[\w. ]*?)\s{2,}((?:https?|wss?)://\S+)(.*)$", "".join(lines), re.M
        )
        names = [name for name, _, _ in printed]
        assert names == ["Socket.IO", "bridge", "API docs", "health", "admin UI", "metrics"]
        async with httpx.AsyncClient() as http:
            for name, url, note in printed:
                if url.startswith("ws"):
                    async with websockets.connect(url, open_timeout=PROCESS_TIMEOUT) as bridge:
                        await bridge.send(json.dumps({"event": "ping", "data": {}, "id": 1}))
                        answer = json.loads(await asyncio.wait_for(bridge.recv(), PROCESS_TIMEOUT))
                        assert answer["event"] == "ack", answer
                        assert answer["id"] == 1, answer
                    continue
                query = {"EIO": "4", "transport": "polling"} if name == "Socket.IO" else {}
                guarded = "(admin token)" in note
                headers = {"Authorization": f"Bearer {token}"} if guarded else {}
                response = await http.get(url, params=query, headers=headers)
                assert response.status_code == 200, (name, url, response.status_code)
                if guarded:
                    assert token is not None
                    assert (await http.get(url)).status_code == 401, (name, url)
        marked = {name for name, _, note in printed if "(admin token)" in note}
        assert marked == ({"metrics"} if token else set())
        signed = {name for name, _, note in printed if "sign in with the token" in note}
        assert signed == ({"API docs", "admin UI"} if token else set())
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), PROCESS_TIMEOUT)
    assert process.returncode == 0
