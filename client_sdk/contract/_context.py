"""What a check works with: the server's profile, peers it owns, names it may use.

:func:`probe_server` learns, once per run, what the server announces (its
``server`` object with capabilities and limits) and whether the management
API and authentication are usable with the given options. A
:class:`CheckContext` lives for one check: it hands out sockets and generated
names, and on exit unsubscribes and disconnects every socket it opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import ValidationError

from ..exceptions import ConnectionLostError, ServerError
from ..protocol import EVENT_CHANNEL, ServerEvent, ServerInfo, ServerLimits
from ._admin import AdminApi, Answer, Token
from ._samples import sample_payload, scope_fields
from ._tokens import hs256_token
from ._wire import BridgePeer, Peer, SocketPeer, probe_is
from .config import ContractConfig
from .failures import CheckFailure, CheckSkipped

__all__ = ["CheckContext", "ServerProfile", "ServerUnreachableError", "probe_server"]


class ServerUnreachableError(Exception):
    """Neither the management API nor the Socket.IO handshake answered."""


@dataclass(frozen=True, slots=True)
class ServerProfile:
    """What the run learnt about the server before the checks.

    Attributes:
        server: the ``server`` object of a successful authentication, if valid.
        auth_ack: that authentication's raw ack.
        auth_problem: why the suite cannot authenticate its users, if it cannot.
        admin_problem: why the management API is unusable, if it is.
    """

    server: ServerInfo | None
    auth_ack: Any
    auth_problem: str | None
    admin_problem: str | None

    @property
    def capabilities(self) -> frozenset[str]:
        """The capabilities the server advertises."""
        return frozenset(self.server.capabilities) if self.server is not None else frozenset()

    @property
    def limits(self) -> ServerLimits | None:
        """The limits the server announces."""
        return self.server.limits if self.server is not None else None


def _authenticate_body(config: ContractConfig, user_id: str, org: str) -> dict[str, Any]:
    body: dict[str, Any] = {"user_id": user_id, "organization_id": org}
    if config.jwt_secret is not None:
        body["token"] = hs256_token(config.jwt_secret, user_id=user_id, organization_id=org)
    return body


async def probe_server(
    config: ContractConfig, http: httpx.AsyncClient, run_id: str
) -> ServerProfile:
    """Learn the server's announced profile and what the options allow.

    Raises:
        ServerUnreachableError: nothing answers at ``config.url``.
    """
    peer = SocketPeer(
        "probe", request_timeout=config.request_timeout, event_timeout=config.event_timeout
    )
    try:
        await peer.open(config.url, config.socketio_path, timeout=config.request_timeout)
    except (ConnectionLostError, ServerError) as exc:
        await peer.close()
        raise ServerUnreachableError(
            f"no Socket.IO handshake at {config.url}{config.socketio_path}: {exc}"
        ) from None
    try:
        body = _authenticate_body(config, f"contract-{run_id}-probe", config.organizations[0])
        try:
            ack = await peer.call("authenticate", body)
        except CheckFailure as exc:
            ack = None
            auth_problem: str | None = f"authenticate was not answered: {exc}"
        else:
            auth_problem = None
            if not isinstance(ack, dict) or ack.get("success") is not True:
                hint = "" if config.jwt_secret else " (a jwt-mode server needs --jwt-secret)"
                auth_problem = f"authenticate was refused{hint}: {str(ack)[:300]}"
    finally:
        await peer.close()
    server: ServerInfo | None = None
    if auth_problem is None and isinstance(ack, dict):
        with contextlib.suppress(ValidationError):
            server = ServerInfo.model_validate(ack.get("server"))
    return ServerProfile(server, ack, auth_problem, await _admin_problem(config, http))


async def second_organization(config: ContractConfig, run_id: str) -> str | None:
    """A generated organization the server lets the suite use, for the isolation checks.

    Organization isolation is the property users trust most, so a run given
    one organization still checks it whenever it can: a ``trust``-mode
    server accepts any stated organization, and with ``jwt_secret`` the
    suite signs tokens for any. ``None`` when the server refuses it.
    """
    org = f"contract-{run_id}-org2"
    peer = SocketPeer(
        "probe-org2", request_timeout=config.request_timeout, event_timeout=config.event_timeout
    )
    try:
        await peer.open(config.url, config.socketio_path, timeout=config.request_timeout)
        ack = await peer.call(
            "authenticate", _authenticate_body(config, f"contract-{run_id}-probe2", org)
        )
    except (ConnectionLostError, ServerError, CheckFailure):
        return None
    finally:
        await peer.close()
    return org if isinstance(ack, dict) and ack.get("success") is True else None


async def _admin_problem(config: ContractConfig, http: httpx.AsyncClient) -> str | None:
    answer = await AdminApi(http, config.admin_token).get("/stats")
    if answer.status == 200:
        return None
    if answer.status in (401, 403):
        if config.admin_token is None:
            return "the management API requires a token: pass the admin token"
        return f"the admin token was refused ({answer.describe()})"
    return f"the management API is unusable ({answer.describe()})"


class CheckContext:
    """Everything one check uses; closes what it opened on :meth:`aclose`.

    Attributes:
        config: the run's options.
        profile: what the server announced.
        admin: raw access to the management API.
    """

    def __init__(
        self, config: ContractConfig, profile: ServerProfile, http: httpx.AsyncClient, run_id: str
    ) -> None:
        self.config = config
        self.profile = profile
        self.admin = AdminApi(http, config.admin_token)
        self.http = http
        self.run_id = run_id
        self._peers: list[Peer] = []
        self._numbers = itertools.count(1)

    # -- names ---------------------------------------------------------------

    @property
    def org(self) -> str:
        """The first organization of the run."""
        return self.config.organizations[0]

    @property
    def org2(self) -> str:
        """The second organization.

        Raises:
            CheckSkipped: only one was given.
        """
        if len(self.config.organizations) < 2:
            raise CheckSkipped("needs a second organization")
        return self.config.organizations[1]

    def name(self, label: str) -> str:
        """A fresh identifier ``contract-<label>-<run>-<n>``: a user, department, queue, probe."""
        return f"contract-{label}-{self.run_id}-{next(self._numbers)}"

    def auth_body(
        self, user_id: str | None = None, org: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        """An ``authenticate`` body for a generated user (with a token when configured)."""
        body = _authenticate_body(self.config, user_id or self.name("user"), org or self.org)
        body.update(extra)
        return body

    @property
    def server(self) -> ServerInfo:
        """The server's announced ``server`` object.

        Raises:
            CheckFailure: the authentication ack carried no valid ``server`` object.
        """
        if self.profile.server is None:
            raise CheckFailure(
                "a valid 'server' object in the authenticate ack (§3)",
                received=self.profile.auth_ack,
            )
        return self.profile.server

    # -- peers ---------------------------------------------------------------

    def _timeouts(self) -> dict[str, float]:
        return {
            "request_timeout": self.config.request_timeout,
            "event_timeout": self.config.event_timeout,
        }

    def new_socket(self, label: str = "socket") -> SocketPeer:
        """An unopened Socket.IO peer, closed with the context (for handshake checks)."""
        peer = SocketPeer(f"{label} {len(self._peers) + 1}", **self._timeouts())
        self._peers.append(peer)
        return peer

    async def socket(
        self,
        *,
        authenticate: bool = True,
        org: str | None = None,
        transports: Sequence[str] = ("websocket",),
        capabilities: Sequence[str] | None = None,
        auth: Mapping[str, Any] | None = None,
        label: str = "socket",
    ) -> SocketPeer:
        """A connected Socket.IO socket, authenticated by event unless told otherwise.

        Raises:
            CheckFailure: the handshake or the authentication failed.
        """
        peer = self.new_socket(label)
        try:
            await peer.open(
                self.config.url,
                self.config.socketio_path,
                transports=transports,
                auth=auth,
                timeout=self.config.request_timeout,
            )
        except (ConnectionLostError, ServerError) as exc:
            raise CheckFailure(
                f"a Socket.IO handshake over {'/'.join(transports)}",
                sent=dict(auth) if auth is not None else "connect",
                received=f"{type(exc).__name__}: {exc}",
            ) from None
        if authenticate:
            body = self.auth_body(org=org)
            if capabilities is not None:
                body["capabilities"] = list(capabilities)
            await peer.request("authenticate", body)
        return peer

    async def bridge(self, *, authenticate: bool = True, org: str | None = None) -> BridgePeer:
        """A connected plain-WebSocket bridge socket, authenticated unless told otherwise."""
        peer = BridgePeer(f"bridge {len(self._peers) + 1}", **self._timeouts())
        self._peers.append(peer)
        try:
            await peer.open(self.config.bridge_url, timeout=self.config.request_timeout)
        except ConnectionLostError as exc:
            raise CheckFailure(
                "a plain-WebSocket upgrade on the Socket.IO path without EIO",
                sent=f"GET {self.config.bridge_url} (Upgrade: websocket)",
                received=str(exc),
            ) from None
        if authenticate:
            await peer.request("authenticate", self.auth_body(org=org))
        return peer

    async def subscribe(self, peer: Peer, channels: Sequence[str], **scope: str) -> dict[str, Any]:
        """A ``subscribe`` that must succeed; its ack."""
        return await peer.request("subscribe", {"channels": list(channels), **scope})

    # -- publishing ----------------------------------------------------------

    async def publish(
        self,
        event: ServerEvent,
        probe: str,
        org: str | None = None,
        department_id: str | None = None,
        queue_name: str | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """Broadcast a sample of ``event`` for the scope (payload and target agree)."""
        org = org or self.org
        data = sample_payload(event, probe, org, department_id, queue_name)
        target = scope_fields(org, department_id, queue_name)
        return await self.admin.broadcast(event.value, data, target=target, **options)

    async def wait_probe(self, peer: Peer, event: ServerEvent, probe: str) -> dict[str, Any]:
        """Wait for the envelope of ``event`` carrying ``probe``; the first one."""
        found = await peer.wait_for(
            event.value,
            where=probe_is(probe),
            sent=self.admin.last_sent,
            expected=f"{event.value} ({EVENT_CHANNEL[event].value} channel) with contract_probe="
            f"{probe!r} at {peer.label} within {peer.event_timeout:g} s",
        )
        envelope = found[0]
        return envelope if isinstance(envelope, dict) else {"envelope": envelope}

    @property
    def last_sent(self) -> Any:
        """The last management API request, for failure messages."""
        return self.admin.last_sent

    async def settle(self) -> None:
        """Keep listening a moment after a fence, so that a late duplicate or leak shows."""
        await asyncio.sleep(self.config.settle)

    async def no_token_answer(self, method: str, path: str, **kwargs: Any) -> Answer:
        """A management API request without any token."""
        return await self.admin.request(method, path, token=Token.NONE, **kwargs)

    # -- cleanup ---------------------------------------------------------------

    async def _release(self, peer: Peer) -> None:
        if peer.subscriptions and peer.identity is not None and not peer.lost.is_set():
            peer.request_timeout = min(peer.request_timeout, 1.0)
            with contextlib.suppress(CheckFailure):
                await peer.call("unsubscribe", {"rooms": list(peer.subscriptions)})
        await peer.close()

    async def aclose(self) -> None:
        """Unsubscribe and disconnect every socket this check opened."""
        peers, self._peers = self._peers, []
        for start in range(0, len(peers), 50):
            await asyncio.gather(*(self._release(p) for p in peers[start : start + 50]))
