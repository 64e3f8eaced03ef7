"""Server configuration: every key, its default, and where it can come from.

Precedence, highest first: command-line flags, ``INTRADAY_*`` environment
variables, the optional config file (TOML or JSON), the defaults below. A bad
value stops start-up with :class:`ConfigError`, whose message names the key.
"""

from __future__ import annotations

import ipaddress
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    JsonConfigSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = [
    "ENV_PREFIX",
    "AuthMode",
    "ConfigError",
    "LogLevel",
    "ServerSettings",
    "is_loopback",
    "load_settings",
]
from .redis_clients import parse_redis_url

ENV_PREFIX = "INTRADAY_"
LogLevel = Literal["debug", "info", "warning", "error", "critical"]

Positive = Annotated[int, Field(gt=0)]


class AuthMode(StrEnum):
    """How the server decides who a socket is."""

    TRUST = "trust"
    """Ids are accepted as stated. For development only; logged loudly."""
    JWT = "jwt"
    """A signed token is required and the stated ids must match its claims."""


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the key."""


def is_loopback(host: str) -> bool:
    """Tell whether ``host`` only listens on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ServerSettings(BaseSettings):
    """Every setting of the reference server, with the protocol's defaults."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        frozen=True,
        extra="forbid",
        validate_default=True,
        use_attribute_docstrings=True,
    )

    host: str = "127.0.0.1"
    """Address to listen on; beyond loopback an admin_token is required."""
    port: Annotated[int, Field(ge=0, le=65535)] = 5000
    """TCP port (0 picks a free one)."""
    path: Annotated[str, Field(pattern=r"^/[A-Za-z0-9_./-]*[A-Za-z0-9_-]$")] = "/ws"
    """The Socket.IO path."""
    cors_origins: list[str] = ["http://localhost:3000"]
    """Browser origins allowed to connect."""
    max_connections_per_org: Positive = 100
    """Open sockets one organization may hold; beyond it ``CONNECTION_LIMIT``."""
    max_connections_total: Positive = 1000
    """Open sockets the server accepts in all."""
    max_message_size_bytes: Annotated[int, Field(ge=1024)] = 1_048_576
    """Largest client message; beyond it ``MESSAGE_TOO_LARGE``."""
    rate_limit_messages_per_second: Positive = 100
    """Client messages per second before ``RATE_LIMIT_EXCEEDED``."""
    rate_limit_strikes: Positive = 3
    """Consecutive seconds over the rate limit after which a client is disconnected."""
    handshake_rate_limit_per_second: Positive = 5
    """Socket.IO CONNECT packets one Engine.IO session may send per second; beyond it
    the CONNECT is refused with ``RATE_LIMIT_EXCEEDED`` and the session is closed."""
    max_queued_messages_per_socket: Positive = 1000
    """Messages waiting to be written to one socket; a socket beyond it is disconnected."""
    max_queued_bytes_per_socket: Annotated[int, Field(ge=65_536)] = 8 * 1_048_576
    """Bytes waiting to be written to one socket; a socket beyond it is disconnected."""
    http_header_timeout_seconds: Annotated[float, Field(gt=0)] = 10.0
    """A TCP connection without a request under way (just opened, half-sent, or idle
    between requests) is closed after this long."""
    ping_interval_ms: Annotated[int, Field(ge=1000, multiple_of=1000)] = 25_000
    """Whole seconds only: python-engineio announces the interval in seconds."""
    ping_timeout_ms: Positive = 60_000
    """How long without a pong before a socket is dropped."""
    room_max_size: Positive = 1000
    """Sockets one room may hold; beyond it ``ROOM_FULL``."""
    max_subscriptions_per_socket: Positive = 256
    """Subscription rooms one socket may hold; beyond it ``SUBSCRIPTION_FAILED``."""
    auth_required: bool = True
    """Whether a socket must authenticate before subscribing."""
    auth_timeout_ms: Positive = 10_000
    """How long a socket may stay unauthenticated."""
    compression_enabled: bool = True
    """permessage-deflate on WebSocket connections."""
    compression_threshold_bytes: Annotated[int, Field(ge=0)] = 1024
    """Messages smaller than this go uncompressed."""
    enable_logging: bool = True
    """Log at all (off: nothing but the start-up banner)."""
    log_level: LogLevel = "info"
    """debug, info, warning, error or critical."""
    log_all_messages: bool = False
    """Log every client message (debugging only)."""
    log_connection_events: bool = True
    """Log connects, authentications and disconnects."""
    log_subscription_events: bool = True
    """Log subscribes and unsubscribes."""
    log_broadcast_events: bool = False
    """Log every published event."""
    log_format: Literal["text", "json"] = "text"
    """``json``: one JSON object per line (see :mod:`reference_server.logformat`)."""
    auth_mode: AuthMode = AuthMode.TRUST
    """trust (ids as stated, development only) or jwt."""
    admin_token: SecretStr | None = None
    """Bearer token of the management API (required beyond loopback)."""
    jwt_secret: SecretStr | None = None
    """HS256 shared secret (jwt mode)."""
    jwt_public_key_file: Path | None = None
    """PEM public key for RS256 (jwt mode)."""
    shutdown_drain_ms: Annotated[int, Field(ge=0)] = 1000
    """How long clients get between the maintenance notice and the disconnect."""
    simulate: bool = False
    """Run the simulated feed."""
    simulate_tick_ms: Positive = 1000
    """The simulated feed's tick."""
    metrics_enabled: bool = True
    """Serve ``GET /metrics`` and record the figures it shows."""
    metrics_require_token: bool = True
    """Put ``/metrics`` behind the admin token (when one is set), like the API."""
    admin_ui_enabled: bool = True
    """Serve the admin web UI at ``/admin``."""
    socketio_admin_ui: bool = False
    """Instrument python-socketio for the official Socket.IO Admin UI (namespace ``/admin``)."""
    batching_enabled: bool = True
    """Offer capability ``batch``: messages to a client that announced it go out gathered."""
    batch_window_ms: Annotated[int, Field(ge=1, le=100)] = 50
    """How long a socket's first pending message waits for others to join its batch (1-100)."""
    batch_max_messages: Annotated[int, Field(ge=1, le=10_000)] = 100
    """Messages one batch holds at most; a socket reaching it is sent its batch at once."""
    store: Annotated[str, Field(pattern=r"^(memory|none|(rediss?|redis\+sentinel)://\S+)$")] = (
        "memory"
    )
    """Where messages are kept for replay and snapshots: ``memory``, ``none`` or a Redis URL
    (``redis://HOST:PORT/DB`` or ``redis+sentinel://HOST:PORT,HOST:PORT/DB/SERVICE``)."""
    store_max_messages: Positive = 10_000
    """Messages kept per stream (``{channel}:{org}``), and snapshot entries per stream."""
    store_max_age_seconds: Positive = 86_400
    """Messages and snapshot entries older than this are dropped; so is a stream silent as long."""
    idempotency_window_seconds: Annotated[int, Field(ge=300)] = 300
    """How long an ``Idempotency-Key`` answers with its first answer (section 9: 5 min at least)."""
    completeness_check_seconds: Annotated[float, Field(gt=0, le=1)] = 0.5
    """How often a node compares what it delivered of each stream with the log (section 6)."""
    cluster: Annotated[str | None, Field(pattern=r"^(rediss?|redis\+sentinel)://\S+$")] = None
    """Run as one node of a cluster over this Redis (``redis://HOST:PORT/DB``, or the primary
    of a Sentinel service: ``redis+sentinel://HOST:PORT,HOST:PORT/DB/SERVICE``); with the
    default ``memory`` store, the store is Redis on the same URL (the cluster's log)."""
    node_id: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")] = None
    """This node's id in the cluster (default: hostname-pid-random)."""
    node_heartbeat_seconds: Annotated[float, Field(gt=0)] = 2.0
    """How often a cluster node writes its heartbeat, stats and connections to Redis."""
    node_timeout_seconds: Annotated[float, Field(gt=0)] = 15.0
    """A node whose heartbeat is older than this is dead: its connections leave the cluster."""
    store_min_replicas: Annotated[int | None, Field(ge=0, le=16)] = None
    """Replicas that must hold a message (Redis ``WAIT``) before a broadcast is answered 200;
    default: 1 when the Redis primary has a replica, else 0."""
    store_replica_timeout_ms: Annotated[int, Field(ge=1, le=1500)] = 500
    """How long a broadcast waits for those replicas before it is answered 503 (retryable)."""

    @model_validator(mode="after")
    def _safe_to_start(self) -> Self:
        if not is_loopback(self.host) and self.admin_token is None:
            raise ValueError(
                f"admin_token: required when listening beyond loopback (host={self.host})"
            )
        if self.auth_mode is AuthMode.JWT:
            if self.jwt_secret is None and self.jwt_public_key_file is None:
                raise ValueError("jwt_secret: jwt mode needs jwt_secret or jwt_public_key_file")
            if self.jwt_public_key_file is not None and not self.jwt_public_key_file.is_file():
                raise ValueError(f"jwt_public_key_file: no such file: {self.jwt_public_key_file}")
        if self.cluster is not None and self.node_timeout_seconds <= self.node_heartbeat_seconds:
            raise ValueError("node_timeout_seconds: must be longer than node_heartbeat_seconds")
        for key in ("store", "cluster"):
            url = getattr(self, key)
            if url is not None and "://" in url:
                try:
                    parse_redis_url(url)
                except ValueError as exc:
                    raise ValueError(f"{key}: {exc}") from None
        if self.ping_timeout_ms < self.ping_interval_ms // 10:
            raise ValueError("ping_timeout_ms: implausibly short against ping_interval_ms")
        return self

    @property
    def store_url(self) -> str:
        """The store actually used: a cluster's default store is Redis on the cluster's URL."""
        if self.cluster is not None and self.store == "memory":
            return self.cluster
        return self.store

    @property
    def transport_message_limit(self) -> int:
        """The frame limit given to the transports, above the protocol's own limit.

        A message between the two limits is answered ``MESSAGE_TOO_LARGE`` on a
        live connection; only one beyond this one closes the connection.
        """
        return self.max_message_size_bytes * 4 + 65_536


def _source(key: str, overrides: dict[str, Any], config_file: Path | None) -> str:
    """Where the value of ``key`` came from, in the words a user would search for."""
    if key in overrides:
        return key  # a flag (--max-message-size-bytes) or a keyword argument
    variable = f"{ENV_PREFIX}{key.upper()}"
    if variable in os.environ:
        return f"{variable} ({key})"
    if config_file is not None:
        return f"{key} in {config_file}"
    return key


def _describe(error: ValidationError, overrides: dict[str, Any], config_file: Path | None) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "configuration"
        message = item["msg"].removeprefix("Value error, ")
        named, _, rest = message.partition(":")
        if named in ServerSettings.model_fields:
            key, message = named, rest.strip()
        where = _source(key.split(".", 1)[0], overrides, config_file)
        shown = f" (got {item['input']!r})" if item["type"] != "value_error" else ""
        lines.append(f"{where}: {message}{shown}")
    return "invalid configuration: " + "; ".join(lines)


def load_settings(config_file: Path | None = None, **overrides: Any) -> ServerSettings:
    """Read the settings from flags (``overrides``), environment and ``config_file``.

    Raises:
        ConfigError: a value is invalid or the file cannot be read.
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    settings_cls: type[ServerSettings] = ServerSettings
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(f"config: no such file: {config_file}")
        suffix = config_file.suffix.lower()
        if suffix not in (".toml", ".json"):
            raise ConfigError(f"config: use a .toml or .json file, not {config_file.name}")
        settings_cls = _from_file(config_file)
    try:
        return settings_cls(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, overrides, config_file)) from None
    except (OSError, ValueError) as exc:  # unreadable or malformed file, unparsable variable
        if config_file is None:
            raise ConfigError(f"invalid configuration: {exc}") from None
        raise ConfigError(f"config: cannot read {config_file}: {exc}") from None


def _from_file(config_file: Path) -> type[ServerSettings]:
    is_toml = config_file.suffix.lower() == ".toml"

    class FileSettings(ServerSettings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            if is_toml:
                from_file: PydanticBaseSettingsSource = TomlConfigSettingsSource(
                    settings_cls, toml_file=config_file
                )
            else:
                from_file = JsonConfigSettingsSource(settings_cls, json_file=config_file)
            return (init_settings, env_settings, from_file)

    return FileSettings
