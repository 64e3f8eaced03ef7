"""The durable store: a Redis Stream per stream, its seq counter and epoch kept in Redis.

A restarted server finds each stream's log, counter and epoch where it left
them, so clients resume with ``complete: true``. An append is one Lua script
(epoch, counter, log entry and snapshot entry change together or not at
all). Entries are ``{seq}-0`` with the envelope as sent minus ``seq`` and
``epoch``, which the reader adds back (editing JSON inside Redis would
re-encode the payload). The log is bounded by count on every append
(``MAXLEN ~``) and by age when read.

**Replicas and failovers** (``redis+sentinel://``, see
:mod:`reference_server.redis_clients`). A broadcast is answered only after
Redis ``WAIT`` confirms that ``store_min_replicas`` replicas hold it (default:
1 when the primary has a replica). Replication is asynchronous, so a replica
promoted by Sentinel may still lack the last appends, which clients may have
received: the next append there would give their ``seq`` to other messages.
So each stream remembers the replication id of the primary it was written
on; a script that finds another one on a primary promoted from a replica
(``master_replid2`` set) starts a new epoch: clients see a gap, never a
reused ``seq``. A primary restarted from its own disk keeps its streams'
epochs (its log is as durable as its persistence is configured to be).

**Keys** share the organization's hash tag, ``intraday:{ORG}:...``, so every
script touches one slot (ready for Redis Cluster); the set of organizations,
for the figures, is written apart from the scripts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import time
from typing import Any, Final

from redis.exceptions import RedisError

from ..redis_clients import open_redis
from .base import ReplaySlice, StoredMessage, StoreStats, StoreUnavailableError, snapshot_key

__all__ = ["RedisStore", "store_keys"]

log = logging.getLogger("reference_server.store")

_PREFIX = "intraday:"
_ORGS = f"{_PREFIX}orgs"
"""The organizations with a log (no hash tag: written by a plain command, not a script)."""

UNREACHABLE: Final = "the message store is unreachable"
"""What a client or API caller is told (Redis's own error, with its address, is logged)."""

_HISTORY = """
local function history_epoch(epoch_key, history_key, fresh)
  local info = redis.call('INFO', 'replication')
  local replid = string.match(info, 'master_replid:(%x+)')
  local replid2 = string.match(info, 'master_replid2:(%x+)') or ''
  local replicas = tonumber(string.match(info, 'connected_slaves:(%d+)') or '0')
  local epoch = redis.call('GET', epoch_key)
  local written = redis.call('GET', history_key)
  if epoch and written ~= replid and string.match(replid2, '[^0]') then
    -- Written on another primary's history, read on a promoted replica: the
    -- replica may lack appends that clients received, so their seq starts anew.
    epoch = false
  end
  if not epoch then
    epoch = fresh
    redis.call('SET', epoch_key, epoch)
  end
  if written ~= replid then
    redis.call('SET', history_key, replid)
  end
  return epoch, replicas
end
"""

_APPEND = (
    _HISTORY
    + """
local epoch, replicas = history_epoch(KEYS[3], KEYS[6], ARGV[3])
local seq = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], seq .. '-0', 'e', ARGV[1], 't', ARGV[6])
if ARGV[4] ~= '' then
  if ARGV[5] == '1' then
    redis.call('HDEL', KEYS[4], ARGV[4])
  else
    redis.call('HSET', KEYS[4], ARGV[4], seq .. ' ' .. ARGV[1])
  end
end
local new = redis.call('SADD', KEYS[5], ARGV[7])
return {seq, epoch, replicas, new}
"""
)

_APPEND_PUBLISHED = _APPEND.replace(
    "return {seq, epoch, replicas, new}",
    """local text = '{"seq":' .. seq .. ',"epoch":"' .. epoch .. '",' .. string.sub(ARGV[1], 2)
redis.call('PUBLISH', ARGV[8], ARGV[9] .. text .. ARGV[10])
return {seq, epoch, replicas, new}""",
)
"""The append, and the message published to a cluster's channel in the same step (see
:mod:`reference_server.cluster.fanout`): every node sees a stream in ``seq`` order."""

_EPOCH = (
    _HISTORY
    + """
local epoch = history_epoch(KEYS[1], KEYS[3], ARGV[1])
return {epoch, tonumber(redis.call('GET', KEYS[2]) or '0')}
"""
)


def store_keys(stream: str) -> tuple[str, str, str, str, str, str]:
    """The keys of ``stream`` (``{channel}:{org}``): log, seq, epoch, snapshot, the
    organization's set of streams and the replication id the stream was last written on.

    All under the organization's hash tag: one slot per organization.
    """
    channel, _, org = stream.partition(":")
    tag = f"{_PREFIX}{{{org}}}:"
    base = f"{tag}{channel}"
    return (
        f"{base}:log",
        f"{base}:seq",
        f"{base}:epoch",
        f"{base}:snapshot",
        f"{tag}streams",
        f"{base}:history",
    )


def _with_place(text: str, seq: int, epoch: str) -> dict[str, Any]:
    envelope: dict[str, Any] = json.loads(text)
    envelope["seq"] = seq
    envelope["epoch"] = epoch
    return envelope


class RedisStore:
    """Per-stream logs in Redis.

    Args:
        url: ``redis://HOST:PORT/DB`` (or ``rediss://``, or ``redis+sentinel://``).
        max_messages: entries kept per stream (approximately: ``MAXLEN ~``).
        max_age_seconds: entries older than this are not replayed.
        min_replicas: replicas that must hold an append before it counts as
            done (``None``: 1 when the primary has a replica, else 0).
        replica_timeout_ms: how long an append waits for them.
    """

    kind = "redis"

    def __init__(
        self,
        url: str,
        *,
        max_messages: int,
        max_age_seconds: float,
        min_replicas: int | None = None,
        replica_timeout_ms: int = 500,
    ) -> None:
        self.url = url
        self._max_messages = max_messages
        self._max_age = max_age_seconds
        self._min_replicas = min_replicas
        self._replica_timeout_ms = replica_timeout_ms
        self._logged_at = -10.0
        self._redis: Any = open_redis(url)
        self._append = self._redis.register_script(_APPEND)
        self._append_published = self._redis.register_script(_APPEND_PUBLISHED)
        self._epoch = self._redis.register_script(_EPOCH)

    async def append(self, stream: str, envelope: dict[str, Any]) -> tuple[int, str]:
        """Log ``envelope`` as the next message of ``stream``; its ``(seq, epoch)``."""
        return await self.append_published(stream, envelope, None)

    async def append_published(
        self, stream: str, envelope: dict[str, Any], frame: tuple[str, str, str] | None
    ) -> tuple[int, str]:
        """Log ``envelope`` and, in the same script, publish it in ``frame``.

        ``frame`` is ``(channel, head, tail)``: the published text is the head,
        the envelope with its ``seq`` and ``epoch``, and the tail. Returns once
        the replicas asked for hold the message.

        Raises:
            StoreUnavailableError: Redis cannot be reached (nothing was logged),
                or the replicas did not confirm in time (the message is logged
                and may have been delivered).
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
        # One connection for the script and its WAIT: WAIT counts that connection's writes.
        try:
            async with self._redis.client() as connection:
                seq, epoch, replicas, new = await script(
                    keys=store_keys(stream), args=args, client=connection
                )
                if int(new):  # a stream (again) unknown: its organization goes in the figures
                    await connection.sadd(_ORGS, stream.partition(":")[2])
                wanted = self._replicas_wanted(int(replicas))
                confirmed = wanted
                if wanted:
                    confirmed = int(
                        await connection.execute_command("WAIT", wanted, self._replica_timeout_ms)
                    )
        except RedisError as exc:
            raise self._unreachable(exc) from None
        envelope["seq"] = int(seq)
        envelope["epoch"] = str(epoch)
        if confirmed < wanted:
            log.warning(
                "%s seq %s: %d of %d replicas confirmed within %d ms",
                stream, seq, confirmed, wanted, self._replica_timeout_ms,
            )  # fmt: skip
            raise StoreUnavailableError(
                "the message store's replicas did not confirm the message in time;"
                " it is logged and may have been delivered"
            )
        return int(seq), str(epoch)

    def _replicas_wanted(self, connected: int) -> int:
        if self._min_replicas is not None:
            return self._min_replicas
        return min(1, connected)

    async def _position(self, stream: str) -> tuple[str, int]:
        _, seq_key, epoch_key, _, _, history_key = store_keys(stream)
        epoch, latest = await self._epoch(
            keys=[epoch_key, seq_key, history_key], args=[secrets.token_hex(4)]
        )
        return str(epoch), int(latest)

    async def read_since(self, stream: str, seq: int, epoch: str | None) -> ReplaySlice:
        """The logged messages of ``stream`` after ``seq``, and whether any may be missing."""
        try:
            current, latest = await self._position(stream)
            if (epoch is not None and epoch != current) or seq >= latest:
                return ReplaySlice((), seq == latest and epoch in (None, current), current, latest)
            entries = await self._redis.xrange(store_keys(stream)[0], min=f"{seq + 1}-0")
        except RedisError as exc:
            raise self._unreachable(exc) from None
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
            entries = await self._redis.hvals(store_keys(stream)[3])
        except RedisError as exc:
            raise self._unreachable(exc) from None
        messages = []
        for value in entries:
            number, _, text = value.partition(" ")
            messages.append(StoredMessage(int(number), _with_place(text, int(number), current)))
        return sorted(messages, key=lambda m: m.seq)

    async def stats(self) -> StoreStats:
        """Streams, messages held, the oldest message's age; ``reachable`` if Redis answered."""
        try:
            streams: list[str] = []
            for org in sorted(await self._redis.smembers(_ORGS)):
                streams.extend(await self._redis.smembers(f"{_PREFIX}{{{org}}}:streams"))
            streams.sort()
            count = 0
            oldest: float | None = None
            now = time.time()
            for stream in streams[:1000]:
                log_key = store_keys(stream)[0]
                count += int(await self._redis.xlen(log_key))
                first = await self._redis.xrange(log_key, count=1)
                if first:
                    age = now - float(first[0][1].get("t", now))
                    oldest = age if oldest is None else max(oldest, age)
        except RedisError as exc:
            log.debug("store figures: %s", exc)
            return StoreStats(self.kind, 0, 0, None, reachable=False)
        return StoreStats(self.kind, len(streams), count, oldest)

    async def ping(self) -> bool:
        """Whether the primary answers now (one round trip, for ``/health``)."""
        try:
            await self._redis.ping()
        except RedisError as exc:
            log.debug("store ping: %s", exc)
            return False
        return True

    def _unreachable(self, exc: RedisError) -> StoreUnavailableError:
        """What a client or API caller is told; Redis's own text (its address too) is logged."""
        now = time.monotonic()
        if now - self._logged_at >= 5.0:  # an outage is one line per 5 s, not one per broadcast
            self._logged_at = now
            log.warning("message store unreachable: %s", exc)
        return StoreUnavailableError(UNREACHABLE)

    async def close(self) -> None:
        """Close the connection pool."""
        with contextlib.suppress(RedisError):
            await self._redis.aclose()
