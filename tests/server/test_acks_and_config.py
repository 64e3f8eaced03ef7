"""Acknowledged deliveries, ``client:ping``, and the server's configuration and CLI.

Acks (protocol §5): a ``requires_ack`` broadcast arrives with an ack request
that a python-socketio handler answers by returning a value; the server then
reports the round trip in ``/api/ws/stats``. Ping (§7): the timestamp is echoed
exactly. Configuration (docs: flags > ``INTRADAY_*`` env > file > defaults):
every bad value is refused with a message that names the key, and the CLI
exits 2 with that message and no traceback.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from reference_server.config import AuthMode, ConfigError, load_settings
from tests.conftest import SioClient, eventually

REPO = Path(__file__).resolve().parents[2]

KPI = {
    "organization_id": "org_a",
    "queue_name": "support",
    "timestamp": "2026-11-25T10:30:00Z",
    "utilization": {"current_utilization": 85},
    "health_score": 90,
}


# -- acknowledged deliveries --------------------------------------------------


async def subscribe_with_ack_handler(
    client: SioClient, answer: Any
) -> tuple[list[Any], asyncio.Event]:
    """Subscribe to kpi with a handler that returns ``answer`` (its ack) for each update."""
    received: list[Any] = []
    arrived = asyncio.Event()

    async def on_kpi_update(envelope: Any) -> Any:
        received.append(envelope)
        arrived.set()
        return answer

    client.sio.on("kpi:update", on_kpi_update)
    ack = await client.call("subscribe", {"channels": ["kpi"]})
    assert ack["success"] is True, ack
    return received, arrived


async def test_requires_ack_broadcast_is_acknowledged_and_timed(
    authed, api: httpx.AsyncClient
) -> None:
    client: SioClient = await authed("user_1", "org_a")
    received, arrived = await subscribe_with_ack_handler(client, {"received": True})
    before = (await api.get("/api/ws/stats")).json()
    assert before["average_latency_ms"] is None
    assert before["max_latency_ms"] is None

    response = await api.post(
        "/api/ws/broadcast",
        json={"event": "kpi:update", "data": KPI, "requires_ack": True},
    )
    assert response.status_code == 200, response.text
    assert response.json()["recipients"] == 1
    await asyncio.wait_for(arrived.wait(), 5)
    [envelope] = received
    assert envelope["requires_ack"] is True
    assert envelope["id"] == response.json()["message_id"]
    assert envelope["data"]["queue_name"] == "support"

    async def latency_recorded() -> dict[str, Any] | None:
        body: dict[str, Any] = (await api.get("/api/ws/stats")).json()
        return body if body["average_latency_ms"] is not None else None

    after = await eventually(latency_recorded)
    assert after["max_latency_ms"] is not None
    assert 0 <= after["average_latency_ms"] <= after["max_latency_ms"] < 5000


async def test_broadcast_without_requires_ack_records_no_latency(
    authed, api: httpx.AsyncClient
) -> None:
    client: SioClient = await authed("user_1", "org_a")
    received, arrived = await subscribe_with_ack_handler(client, {"received": True})
    response = await api.post("/api/ws/broadcast", json={"event": "kpi:update", "data": KPI})
    assert response.status_code == 200, response.text
    await asyncio.wait_for(arrived.wait(), 5)
    assert received[0]["requires_ack"] is False
    # Anything the client sent back for the update precedes this round trip.
    assert (await client.call("client:ping", {}))["success"] is True
    stats = (await api.get("/api/ws/stats")).json()
    assert stats["average_latency_ms"] is None
    assert stats["max_latency_ms"] is None


# -- client:ping --------------------------------------------------------------


@pytest.mark.parametrize(
    "timestamp", [1_732_530_600_123, 17, 1_732_530_600_123.5, 0, None], ids=repr
)
async def test_ping_echoes_the_timestamp_exactly(authed, timestamp: Any) -> None:
    client: SioClient = await authed()
    ack = await client.call("client:ping", {"timestamp": timestamp})
    assert ack["success"] is True, ack
    assert ack["timestamp"] == timestamp
    assert type(ack["timestamp"]) is type(timestamp)
    assert isinstance(ack["server_time"], str)
    assert ack["server_time"].endswith("Z")
    [pong] = await client.wait_for("client:pong")
    assert pong["timestamp"] == timestamp
    assert type(pong["timestamp"]) is type(timestamp)
    assert isinstance(pong["server_time"], str)


async def test_ping_without_ack_still_gets_a_pong(authed) -> None:
    client: SioClient = await authed()
    await client.emit("client:ping", {"timestamp": 42})
    [pong] = await client.wait_for("client:pong")
    assert pong["timestamp"] == 42
    assert type(pong["timestamp"]) is int


# -- configuration ------------------------------------------------------------


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``INTRADAY_*`` variable of the outer environment leaks into these tests."""
    for name in list(os.environ):
        if name.upper().startswith("INTRADAY_"):
            monkeypatch.delenv(name)


def test_defaults_are_the_protocol_defaults() -> None:
    settings = load_settings()
    assert settings.port == 5000
    assert settings.path == "/ws"
    assert settings.max_message_size_bytes == 1_048_576
    assert settings.rate_limit_messages_per_second == 100
    assert settings.max_connections_per_org == 100
    assert settings.max_connections_total == 1000
    assert settings.room_max_size == 1000
    assert settings.auth_timeout_ms == 10_000


def test_env_var_with_a_bad_value_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTRADAY_PORT", "abc")
    with pytest.raises(ConfigError, match="port"):
        load_settings()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("port", 70000),
        ("max_message_size_bytes", 1023),
        ("rate_limit_messages_per_second", 0),
        ("max_connections_per_org", -1),
        ("auth_mode", "nobody"),
        ("path", "no-slash"),
    ],
)
def test_bad_flag_values_name_the_key(key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=key):
        load_settings(**{key: value})


def test_boundary_values_are_accepted() -> None:
    settings = load_settings(max_message_size_bytes=1024, port=65535, rate_limit_strikes=1)
    assert settings.max_message_size_bytes == 1024
    assert settings.port == 65535


def test_toml_file_with_a_bad_value_names_the_key(tmp_path: Path) -> None:
    config = tmp_path / "server.toml"
    config.write_text("port = 5001\nmax_message_size_bytes = 100\n")
    with pytest.raises(ConfigError, match="max_message_size_bytes"):
        load_settings(config)


def test_json_file_with_a_bad_value_names_the_key(tmp_path: Path) -> None:
    config = tmp_path / "server.json"
    config.write_text(json.dumps({"room_max_size": "lots"}))
    with pytest.raises(ConfigError, match="room_max_size"):
        load_settings(config)


def test_good_files_are_read(tmp_path: Path) -> None:
    toml = tmp_path / "server.toml"
    toml.write_text('port = 5001\nauth_mode = "trust"\nroom_max_size = 7\n')
    assert load_settings(toml).room_max_size == 7
    as_json = tmp_path / "server.json"
    as_json.write_text(json.dumps({"port": 5002, "rate_limit_strikes": 4}))
    settings = load_settings(as_json)
    assert settings.port == 5002
    assert settings.rate_limit_strikes == 4


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_unknown_key_in_a_file_is_refused_by_name(tmp_path: Path, suffix: str) -> None:
    config = tmp_path / f"server{suffix}"
    config.write_text(
        "max_conections_total = 5\n" if suffix == ".toml" else '{"max_conections_total": 5}'
    )
    with pytest.raises(ConfigError, match="max_conections_total"):
        load_settings(config)


def test_unknown_key_as_a_flag_is_refused() -> None:
    with pytest.raises(ConfigError, match="max_conections_total"):
        load_settings(max_conections_total=5)


def test_unreadable_or_missing_config_files_are_refused(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("port = = 1\n")
    with pytest.raises(ConfigError, match="config"):
        load_settings(broken)
    with pytest.raises(ConfigError, match="config"):
        load_settings(tmp_path / "missing.toml")
    other = tmp_path / "server.yaml"
    other.write_text("port: 1\n")
    with pytest.raises(ConfigError, match="config"):
        load_settings(other)


def test_precedence_flags_over_env_over_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "server.toml"
    config.write_text("port = 1111\nroom_max_size = 11\nrate_limit_strikes = 5\n")
    assert load_settings(config).port == 1111
    monkeypatch.setenv("INTRADAY_PORT", "2222")
    monkeypatch.setenv("INTRADAY_ROOM_MAX_SIZE", "22")
    settings = load_settings(config)
    assert (settings.port, settings.room_max_size, settings.rate_limit_strikes) == (2222, 22, 5)
    settings = load_settings(config, port=3333, room_max_size=None)
    # A flag not given (None) does not hide the environment.
    assert (settings.port, settings.room_max_size, settings.rate_limit_strikes) == (3333, 22, 5)


def test_non_loopback_host_requires_an_admin_token() -> None:
    with pytest.raises(ConfigError, match="admin_token"):
        load_settings(host="0.0.0.0")
    assert load_settings(host="0.0.0.0", admin_token="s3cret").host == "0.0.0.0"
    assert load_settings(host="localhost").admin_token is None
    assert load_settings(host="::1").admin_token is None


def test_jwt_mode_requires_a_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="jwt_secret"):
        load_settings(auth_mode="jwt")
    with pytest.raises(ConfigError, match="jwt_public_key_file"):
        load_settings(auth_mode="jwt", jwt_public_key_file=tmp_path / "missing.pem")
    assert load_settings(auth_mode="jwt", jwt_secret="x" * 32).auth_mode is AuthMode.JWT


# -- the CLI ------------------------------------------------------------------


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.upper().startswith("INTRADAY_")}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "reference_server.cli", *args],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
    )


def assert_refused_naming(result: subprocess.CompletedProcess[str], key: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert key in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout, result.stderr


def test_cli_rejects_a_port_that_is_not_a_number() -> None:
    assert_refused_naming(run_cli("serve", "--port", "notanumber"), "port")


def test_cli_rejects_a_bad_config_file(tmp_path: Path) -> None:
    config = tmp_path / "server.toml"
    config.write_text("max_message_size_bytes = 10\n")
    assert_refused_naming(
        run_cli("serve", "--port", "0", "--config", str(config)), "max_message_size_bytes"
    )


def test_cli_rejects_a_bad_environment_variable() -> None:
    result = run_cli("serve", "--port", "0", env={"INTRADAY_RATE_LIMIT_MESSAGES_PER_SECOND": "x"})
    assert_refused_naming(result, "rate_limit_messages_per_second")


def test_cli_refuses_to_listen_beyond_loopback_without_an_admin_token() -> None:
    assert_refused_naming(run_cli("serve", "--port", "0", "--host", "0.0.0.0"), "admin_token")


def test_cli_refuses_jwt_mode_without_a_key() -> None:
    assert_refused_naming(run_cli("serve", "--port", "0", "--auth-mode", "jwt"), "jwt_secret")
