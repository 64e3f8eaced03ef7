"""Idempotent publishing (protocol section 9): a retried broadcast is the same message.

A ``POST /broadcast...`` with an ``Idempotency-Key`` first *claims* the key in
the store (Redis in a cluster, so every node sees the claim): the claim holds
a fingerprint of the request. The request that wins the claim publishes and
then *settles* the key with its answer, which is kept for the window
(``idempotency_window_seconds``, 300 s by default). Any other request with
the key:

- another body (fingerprint): refused 409 ``INVALID_MESSAGE``;
- same body, settled: answered with the first answer, nothing sent again;
- same body, still being published: waits for the answer (polling the claim,
  which is how a request on another node learns of it), never an "in
  progress" refusal.

A publish that fails (the store unreachable: 503) releases its claim, so a
retry with the key publishes: nothing was delivered the first time. One
that was logged but not confirmed by enough replicas (503 as well) stands: its
key answers its ``message_id`` (with ``recipients`` 0) from then on. A claim
whose owner died mid-publish expires after :data:`PENDING_SECONDS` and a
waiter publishes, under the ``message_id`` the claim held: the dead owner may
have logged the message already, and a second copy under the same id is one
that subscribers' dedupe drops (under a new id it would be a second alert).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from client_sdk.protocol import BroadcastRequest, BroadcastResult, ErrorCode, ProtocolError

from .config import ServerSettings
from .store import KeyRecord, MessageStore, StoreUnavailableError, UnconfirmedAppendError

__all__ = [
    "HEADER",
    "PENDING_SECONDS",
    "Idempotency",
    "KeyRecord",
    "KeyReusedError",
    "KeyStore",
    "MemoryKeys",
    "check_key",
    "open_keys",
]

log = logging.getLogger("reference_server.broadcasts")

HEADER: Final = "Idempotency-Key"
"""The request header that carries the key (section 9)."""

PENDING_SECONDS: Final = 30.0
"""How long a claim whose answer never came (its node died) keeps others waiting."""

_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


class KeyReusedError(ProtocolError):
    """The key was used with another body: 409 ``INVALID_MESSAGE``, not retryable."""

    http_status = 409

    def __init__(self) -> None:
        super().__init__(
            ErrorCode.INVALID_MESSAGE,
            f"this {HEADER} was already used with another request body",
        )


def check_key(key: str) -> str:
    """``key`` if it is a valid idempotency key (1-128 of ``A-Za-z0-9_.:-``).

    Raises:
        ProtocolError: ``INVALID_MESSAGE`` (400).
    """
    if not _KEY.match(key):
        raise ProtocolError(
            ErrorCode.INVALID_MESSAGE, f"{HEADER}: 1-128 characters of A-Za-z0-9_.:-"
        )
    return key


class KeyStore(Protocol):
    """Where keys are kept: :class:`MemoryKeys`, or Redis (:class:`~.store.redis.RedisStore`)."""

    async def claim_key(
        self, key: str, fingerprint: str, owner: str, ttl_seconds: float, message_id: str
    ) -> KeyRecord | None:
        """Claim ``key`` for ``owner``, who will publish as ``message_id``, unless it is held;
        ``None`` when claimed, else what it holds.

        Raises:
            StoreUnavailableError: the store cannot be reached.
        """
        ...

    async def settle_key(
        self, key: str, fingerprint: str, result: dict[str, Any], ttl_seconds: float
    ) -> None:
        """Keep ``result`` as the key's answer for ``ttl_seconds``.

        Raises:
            StoreUnavailableError: the store cannot be reached.
        """
        ...

    async def release_key(self, key: str, owner: str) -> None:
        """Forget the key if ``owner``'s claim is still pending (its publish failed).

        Raises:
            StoreUnavailableError: the store cannot be reached.
        """
        ...


@dataclass(frozen=True, slots=True)
class _HeldKey:
    """What :class:`MemoryKeys` holds for one key: a pending claim, or a settled answer."""

    expires_at: float
    fingerprint: str
    owner: str
    """Whose claim it is (``""`` once settled)."""
    result: dict[str, Any] | None
    """The answer, once settled."""
    message_id: str | None
    """The id the claim publishes under (``None`` once settled)."""

    def record(self) -> KeyRecord:
        """The key as the store's protocol reports it."""
        return KeyRecord(self.fingerprint, self.result, self.message_id)


class MemoryKeys:
    """Keys in this process: a single server's (memory store or none)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._keys: dict[str, _HeldKey] = {}

    def _live(self, key: str) -> _HeldKey | None:
        entry = self._keys.get(key)
        if entry is not None and entry.expires_at <= self._clock():
            del self._keys[key]
            return None
        return entry

    async def claim_key(
        self, key: str, fingerprint: str, owner: str, ttl_seconds: float, message_id: str
    ) -> KeyRecord | None:
        """Claim ``key`` unless it is held; ``None`` when claimed, else what it holds."""
        entry = self._live(key)
        if entry is not None:
            return entry.record()
        self._forget_expired()
        expires_at = self._clock() + ttl_seconds
        self._keys[key] = _HeldKey(expires_at, fingerprint, owner, None, message_id)
        return None

    def _forget_expired(self) -> None:
        """Drop expired keys from the oldest claimed on (amortized O(1) per claim)."""
        now = self._clock()
        while self._keys:
            oldest = next(iter(self._keys))
            if self._keys[oldest].expires_at > now:
                return
            del self._keys[oldest]

    async def settle_key(
        self, key: str, fingerprint: str, result: dict[str, Any], ttl_seconds: float
    ) -> None:
        """Keep ``result`` as the key's answer for ``ttl_seconds``."""
        self._keys[key] = _HeldKey(self._clock() + ttl_seconds, fingerprint, "", result, None)

    async def release_key(self, key: str, owner: str) -> None:
        """Forget the key if ``owner``'s claim is still pending."""
        entry = self._live(key)
        if entry is not None and entry.owner == owner and entry.result is None:
            del self._keys[key]


def fingerprint(request: BroadcastRequest) -> str:
    """The request as the key remembers it: two bodies that mean the same are one."""
    canonical = json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class Idempotency:
    """Publishes a keyed broadcast once per key and window.

    Args:
        keys: where keys are kept.
        window_seconds: how long a settled key answers with its first answer.
    """

    def __init__(self, keys: KeyStore, window_seconds: float) -> None:
        self._keys = keys
        self._window = window_seconds

    async def publish(
        self,
        key: str,
        request: BroadcastRequest,
        publish: Callable[[BroadcastRequest, str], Awaitable[BroadcastResult]],
        gone: Callable[[], Awaitable[bool]] | None = None,
    ) -> BroadcastResult:
        """``publish(request, message_id)`` unless ``key`` was used: then the first answer.

        ``message_id`` is new, or the one a claim that expired while this
        request waited held (its owner died mid-publish, maybe after logging it).

        ``gone`` says whether the caller left (its HTTP client closed the
        connection). A request waiting for the key's first one then stops
        without publishing: a claim whose owner died expires only after
        :data:`PENDING_SECONDS`, and a publish then would come late (after what
        the publisher sent since, believing this one failed), for nobody's answer.

        Raises:
            KeyReusedError: the key was used with another body (409).
            ProtocolError: what ``publish`` raises (the key is then free again);
                ``INTERNAL_ERROR`` when the caller left while waiting.
        """
        wanted = fingerprint(request)
        owner = secrets.token_hex(8)
        message_id = uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PENDING_SECONDS + 1.0
        pause = 0.005
        while True:
            record = await self._keys.claim_key(key, wanted, owner, PENDING_SECONDS, message_id)
            if record is None:
                break
            if record.fingerprint != wanted:
                raise KeyReusedError()
            if record.result is not None:
                return BroadcastResult.model_validate(record.result)
            if record.message_id is not None:
                message_id = record.message_id  # if its owner dies, this publishes it as that
            if loop.time() > deadline:  # cannot happen unless clocks disagree: the claim expires
                raise StoreUnavailableError("the first request with this key has not finished")
            if gone is not None and await gone():
                raise ProtocolError(
                    ErrorCode.INTERNAL_ERROR, "the caller left while the key was held"
                )
            # The first request is publishing, maybe on another node: its answer
            # appears in the store, where this request looks for it.
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.1)
        try:
            result = await publish(request, message_id)
        except UnconfirmedAppendError as error:
            # Logged already (its subscribers get it, live or from the log): a retry
            # answers this message_id instead of publishing it a second time.
            stands = BroadcastResult(message_id=error.message_id, recipients=0)
            with contextlib.suppress(ProtocolError):
                await self._keys.settle_key(
                    key, wanted, stands.model_dump(mode="json"), self._window
                )
            raise
        except BaseException:
            with contextlib.suppress(ProtocolError):
                await asyncio.shield(self._keys.release_key(key, owner))
            raise
        try:
            await self._keys.settle_key(key, wanted, result.model_dump(mode="json"), self._window)
        except ProtocolError as error:  # delivered already: the answer stands
            log.warning("idempotency key %s not settled: %s", key, error.message)
        return result


def open_keys(settings: ServerSettings, store: MessageStore | None) -> tuple[KeyStore, bool]:
    """Where the server keeps keys (its Redis store, else a cluster's Redis, else this
    process), and whether they are apart from the store (then closed on their own)."""
    redis_url = settings.store_url if settings.store_url.startswith("redis") else settings.cluster
    if redis_url is None:
        return MemoryKeys(), False
    from .store.redis import RedisStore  # only a server with Redis needs redis-py

    if isinstance(store, RedisStore):
        return store, False
    keys = RedisStore(
        redis_url,
        max_messages=settings.store_max_messages,
        max_age_seconds=settings.store_max_age_seconds,
    )
    return keys, True
