"""The durable store: a Redis Stream per stream, its seq counter and epoch kept in Redis.

A restarted server finds each stream's log, counter and epoch where it left
them, so clients resume with ``complete: true``. An append is one Lua script
(epoch, counter, log entry and snapshot entry change together or not at
all). Entries are ``{seq}-0`` with the envelope as sent minus ``seq`` and
``epoch``, which the reader adds back (editing JSON inside Redis would
re-encode the payload). The log is bounded by count on every append
(``MAXLEN ~``) and by age when read.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .base import (
    KeyRecord,
    ReplaySlice,
    StoredMessage,
    StoreStats,
    StoreUnavailableError,
    StreamHead,
    snapshot_key,
)

__all__ = ["RedisStore"]

_PREFIX = "intraday:"

_APPEND = """
local epoch = redis.call('GET', KEYS[3])
if not epoch then
  epoch = ARGV[3]
  redis.call('SET', KEYS[3], epoch)
end
local seq = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], seq .. '-0', 'e', ARGV[1], 't', ARGV[6])
if ARGV[4] ~= '' then
  if ARGV[5] == '1' then
    redis.call('HDEL', KEYS[4], ARGV[4])
  else
    redis.call('HSET', KEYS[4], ARGV[4], seq .. ' ' .. ARGV[1])
  end
end
redis.call('SADD', KEYS[5], ARGV[7])
return {seq, epoch}
"""

_APPEND_PUBLISHED = _APPEND.replace(
    "return {seq, epoch}",
    """local text = '{"seq":' .. seq .. ',"epoch":"' .. epoch .. '",' .. string.sub(ARGV[1], 2)
redis.call('PUBLISH', ARGV[8], ARGV[9] .. text .. ARGV[10])
return {seq, epoch}""",
)
"""The append, and the message published to a cluster's channel in the same step (see
:mod:`reference_server.cluster.fanout`): every node sees a stream in ``seq`` order."""

_EPOCH = """
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[1], epoch)
end
return {epoch, tonumber(redis.call('GET', KEYS[2]) or '0')}
"""


_CLAIM = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return false
end
return redis.call('GET', KEYS[1])
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def _keys(stream: str) -> tuple[str, str, str, str]:
    base = f"{_PREFIX}{stream}"
    return f"{base}:log", f"{base}:seq", f"{base}:epoch", f"{base}:snapshot"


def _with_place(text: str, seq: int, epoch: str) -> dict[str, Any]:
    envelope: dict[str, Any] = json.loads(text)
    envelope["seq"] = seq
    envelope["epoch"] = epoch
    return envelope


class RedisStore:
    """Per-stream logs in Redis.

    Args:
        url: ``redis://HOST:PORT/DB`` (or ``rediss://``).
        max_messages: entries kept per stream (approximately: ``MAXLEN ~``).
        max_age_seconds: entries older than this are not replayed.
    """

    kind = "redis"

    def __init__(self, url: str, *, max_messages: int, max_age_seconds: float) -> None:
        self.url = url
        self._max_messages = max_messages
        self._max_age = max_age_seconds
        # Short timeouts: while Redis is away a broadcast must fail fast (503), not hang.
        # Any: redis-py's answers are typed bytes-or-str-or-None whatever
        # decode_responses says; the shapes are checked here instead.
        self._redis: Any = aioredis.from_url(
            url, socket_timeout=2.0, socket_connect_timeout=2.0, decode_responses=True
        )
        self._append = self._redis.register_script(_APPEND)
        self._append_published = self._redis.register_script(_APPEND_PUBLISHED)
        self._epoch = self._redis.register_script(_EPOCH)
        self._claim = self._redis.register_script(_CLAIM)
        self._release = self._redis.register_script(_RELEASE)

    async def append(self, stream: str, envelope: dict[str, Any]) -> tuple[int, str]:
        """Log ``envelope`` as the next message of ``stream``; its ``(seq, epoch)``."""
        return await self.append_published(stream, envelope, None)

    async def append_published(
        self, stream: str, envelope: dict[str, Any], frame: tuple[str, str, str] | None
    ) -> tuple[int, str]:
        """Log ``envelope`` and, in the same script, publish it in ``frame``.

        ``frame`` is ``(channel, head, tail)``: the published text is the head,
        the envelope with its ``seq`` and ``epoch``, and the tail.
        """
        key, removes = snapshot_key(envelope)
        text = json.dumps(envelope, separators=(",", ":"))
        args: list[Any] = [
            text,
            self._max_messages,
            secrets.token_hex(4),
            key or "",
            "1" if removes else "0",
            f"{time.time():.3f}",
            stream,
        ]
        script = self._append
        if frame is not None:
            script = self._append_published
            args.extend(frame)
        try:
            seq, epoch = await script(keys=[*_keys(stream), f"{_PREFIX}streams"], args=args)
        except RedisError as exc:
            raise StoreUnavailableError(f"the message store is unreachable: {exc}") from None
        envelope["seq"] = int(seq)
        envelope["epoch"] = str(epoch)
        return int(seq), str(epoch)

    async def _position(self, stream: str) -> tuple[str, int]:
        _, seq_key, epoch_key, _ = _keys(stream)
        epoch, latest = await self._epoch(keys=[epoch_key, seq_key], args=[secrets.token_hex(4)])
        return str(epoch), int(latest)

    async def read_since(self, stream: str, seq: int, epoch: str | None) -> ReplaySlice:
        """The logged messages of ``stream`` after ``seq``, and whether any may be missing."""
        try:
            current, latest = await self._position(stream)
            if (epoch is not None and epoch != current) or seq >= latest:
                return ReplaySlice((), seq == latest and epoch in (None, current), current, latest)
            entries = await self._redis.xrange(_keys(stream)[0], min=f"{seq + 1}-0")
        except RedisError as exc:
            raise StoreUnavailableError(f"the message store is unreachable: {exc}") from None
        deadline = time.time() - self._max_age
        messages = tuple(
            StoredMessage(number, _with_place(fields["e"], number, current))
            for entry_id, fields in entries
            if float(fields.get("t", "0")) >= deadline
            and (number := int(entry_id.split("-")[0])) <= latest
        )
        first = messages[0].seq if messages else latest + 1
        return ReplaySlice(messages, first == seq + 1, current, latest)

    async def snapshot(self, stream: str) -> list[StoredMessage]:
        """The latest message of each ``(event, target)`` of ``stream``, oldest first."""
        try:
            current, _ = await self._position(stream)
            entries = await self._redis.hvals(_keys(stream)[3])
        except RedisError as exc:
            raise StoreUnavailableError(f"the message store is unreachable: {exc}") from None
        messages = []
        for value in entries:
            number, _, text = value.partition(" ")
            messages.append(StoredMessage(int(number), _with_place(text, int(number), current)))
        return sorted(messages, key=lambda m: m.seq)

    async def heads(self, streams: list[str]) -> dict[str, StreamHead]:
        """Where each of ``streams`` stands: each stream's epoch and counter, read with
        ``MGET`` (500 streams a command: parsing one reply per key cost 20 times more)
        in one pipelined round trip."""
        pipe = self._redis.pipeline(transaction=False)
        for start in range(0, len(streams), 500):
            keys: list[str] = []
            for name in streams[start : start + 500]:
                _, seq_key, epoch_key, _ = _keys(name)
                keys += (epoch_key, seq_key)
            pipe.mget(keys)
        try:
            answers = [value for chunk in await pipe.execute() for value in chunk]
        except RedisError as exc:
            raise StoreUnavailableError(f"the message store is unreachable: {exc}") from None
        return {
            name: StreamHead(epoch, int(latest or 0))
            for name, epoch, latest in zip(streams, answers[::2], answers[1::2], strict=True)
        }

    # -- idempotency keys (reference_server.idempotency) ---------------------------

    async def claim_key(
        self, key: str, fingerprint: str, owner: str, ttl_seconds: float
    ) -> KeyRecord | None:
        """Claim ``key`` unless it is held (one script: every node sees one winner)."""
        pending = json.dumps({"f": fingerprint, "o": owner})
        try:
            held = await self._claim(
                keys=[f"{_PREFIX}idempotency:{key}"], args=[pending, int(ttl_seconds * 1000)]
            )
        except RedisError as exc:
            raise StoreUnavailableError(f"the message store is unreachable: {exc}") from None
        if held is None:
            return None
        record = json.loads(held)
        return KeyRecord(str(record["f"]), record.get("r"))

    async def settle_key(
        self, key: str, fingerprint: str, result: dict[str, Any], ttl_seconds: float
    ) -> None:
        """Keep ``result`` as the key's answer for ``ttl_seconds``."""
        settled = json.dumps({"f": fingerprint, "r": result})
        try:
            await self._redis.set(
                f"{_PREFIX}idempotency:{key}", settled, px=int(ttl_seconds * 1000)
            )
        except RedisError as exc:
            raise StoreUnavailableError(f"the message store is unreachable: {exc}") from None

    async def release_key(self, key: str, owner: str) -> None:
        """Forget the key if ``owner``'s claim is still pending."""
        # The claim's text, as claim_key wrote it: the script compares the whole value.
        try:
            name = f"{_PREFIX}idempotency:{key}"
            held = await self._redis.get(name)
            if held is not None and json.loads(held).get("o") == owner:
                await self._release(keys=[name], args=[held])
        except RedisError as exc:
            raise StoreUnavailableError(f"the message store is unreachable: {exc}") from None

    async def stats(self) -> StoreStats:
        """Streams, messages held, the oldest message's age; ``reachable`` if Redis answered."""
        try:
            streams = sorted(await self._redis.smembers(f"{_PREFIX}streams"))
            count = 0
            oldest: float | None = None
            now = time.time()
            for stream in streams[:1000]:
                log = _keys(stream)[0]
                count += int(await self._redis.xlen(log))
                first = await self._redis.xrange(log, count=1)
                if first:
                    age = now - float(first[0][1].get("t", now))
                    oldest = age if oldest is None else max(oldest, age)
        except RedisError:
            return StoreStats(self.kind, 0, 0, None, reachable=False)
        return StoreStats(self.kind, len(streams), count, oldest)

    async def close(self) -> None:
        """Close the connection pool."""
        with contextlib.suppress(RedisError):
            await self._redis.aclose()
