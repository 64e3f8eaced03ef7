"""The durable store: a Redis Stream per stream, its seq counter and epoch kept in Redis.

A restarted server finds each stream's log, counter and epoch where it left
them, so clients resume with ``complete: true``. An append is one Lua script
(epoch, counter, log entry and snapshot entry change together or not at
all). Entries are ``{seq}-0`` with the envelope as sent minus ``seq`` and
``epoch``, which the reader adds back (editing JSON inside Redis would
re-encode the payload).

Bounds, all kept by the append script: the log by count (``MAXLEN ~``) and
by age (its oldest entries), the snapshot by count and age too (a sorted set
of its entries by time beside the hash), and a stream silent for longer than
the age bound expires altogether, counter and epoch included; its next
message starts a new life at seq 1 in a new epoch
(:func:`~reference_server.store.base.life_epoch`). The age trims and the
expiries run at most once a second per stream (:mod:`.redis_scripts`): an
append costs one ``XADD`` per message and a few commands per script. Readers never write a
stream's keys: a ``since`` or ``snapshot`` for an organization that never
published costs nothing. A malformed entry is skipped, logged, and the
replay reported incomplete; it never fails every resume of its stream.

**Replicas and failovers** (``redis+sentinel://``, see
:mod:`reference_server.redis_clients`). A broadcast is answered only after
Redis ``WAIT`` confirms that ``store_min_replicas`` replicas hold it (default:
1 when the primary has a replica). A replica promoted by Sentinel may lack
the last appends, which clients may have received; so a life's epoch is
named after the replication id of the primary it began on (and the age-bound
window), each stream remembers the replication id it was last written on,
and a primary promoted from a replica (``master_replid2`` set) that finds
another one starts the stream's next life: a new epoch, never a reused
``seq``. A primary restarted from its own disk keeps its streams' lives.

**Keys** share the organization's hash tag, ``intraday:{ORG}:...``: every
script touches one slot (ready for Redis Cluster). The set of organizations
with a log, for the figures, is written apart from the scripts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from ..redis_clients import open_redis
from .base import (
    KeyRecord,
    ReplaySlice,
    StoredMessage,
    StoreStats,
    StoreUnavailableError,
    StreamHead,
    UnconfirmedAppendError,
    life_epoch,
    snapshot_key,
)
from .redis_scripts import APPEND, CLAIM, EPOCH, FIGURES, RELEASE, UPKEEP_SECONDS

__all__ = ["Published", "RedisStore"]

log = logging.getLogger("reference_server.store")

_PREFIX = "intraday:"
_ORGS = f"{_PREFIX}orgs"
"""The organizations with a log (no hash tag: written by a plain command, not a script)."""

_UNAVAILABLE = "the message store is unavailable; retry later"
"""What clients are told: Redis's own text names hosts and ports, for the log only."""

FIGURES_TTL = 1.0
"""Seconds the store's figures (``/health``, ``/stats``) are reused before Redis is asked again."""


def _org_prefix(org: str) -> str:
    """Where one organization's keys live: its hash tag, so one slot for all of them."""
    return f"{_PREFIX}{{{org}}}:"


def _keys(stream: str) -> tuple[str, str, str, str, str]:
    channel, _, org = stream.partition(":")
    base = f"{_org_prefix(org)}{channel}"
    return f"{base}:log", f"{base}:seq", f"{base}:epoch", f"{base}:snapshot", f"{base}:snaptimes"


def _history_key(stream: str) -> str:
    """The replication id of the primary ``stream`` was last written on."""
    channel, _, org = stream.partition(":")
    return f"{_org_prefix(org)}{channel}:history"


def _upkeep_key(stream: str) -> str:
    """When the next upkeep of ``stream``'s bounds is due (see :mod:`.redis_scripts`)."""
    channel, _, org = stream.partition(":")
    return f"{_org_prefix(org)}{channel}:upkeep"


def _active_key(stream: str) -> str:
    """The organization's streams with a message younger than the age bound, by last append."""
    return f"{_org_prefix(stream.partition(':')[2])}active-streams"


def _with_place(text: str, seq: int, epoch: str) -> dict[str, Any] | None:
    """The envelope of a stored text with its place; ``None`` if the text is no envelope."""
    try:
        envelope = json.loads(text)
    except ValueError:
        return None
    if not (
        isinstance(envelope, dict)
        and isinstance(envelope.get("id"), str)
        and isinstance(envelope.get("event"), str)
        and isinstance(envelope.get("target"), dict)
    ):
        return None
    envelope["seq"] = seq
    envelope["epoch"] = epoch
    return envelope


def _entry(entry_id: Any, fields: Any, epoch: str) -> tuple[float, StoredMessage] | None:
    """A log entry's time and message; ``None`` (logged) if it is malformed."""
    try:
        number = int(str(entry_id).split("-")[0])
        at = float(fields["t"])
        envelope = _with_place(fields["e"], number, epoch)
    except (KeyError, TypeError, ValueError):
        envelope = None
    if envelope is None:
        log.error("skipping malformed log entry %s", str(entry_id)[:40])
        return None
    return at, StoredMessage(number, envelope)


@dataclass(frozen=True, slots=True)
class Published:
    """What :meth:`RedisStore.append_published` did with its messages."""

    listeners: int
    """The subscribers of the presence channel when the messages were published."""
    confirmed: bool
    """Whether the replicas wanted confirmed them in time (else: logged, maybe delivered)."""


class RedisStore:
    """Per-stream logs in Redis.

    Args:
        url: ``redis://HOST:PORT/DB`` (or ``rediss://``, or ``redis+sentinel://``).
        max_messages: entries kept per stream (approximately: ``MAXLEN ~``).
        max_age_seconds: entries older than this are not replayed, then removed.
        clock: wall-clock seconds (injected by tests to age messages).
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
        clock: Callable[[], float] = time.time,
        min_replicas: int | None = None,
        replica_timeout_ms: int = 500,
    ) -> None:
        self.url = url
        self._clock = clock
        self._max_messages = max_messages
        self._max_age = max_age_seconds
        self._min_replicas = min_replicas
        self._replica_timeout_ms = replica_timeout_ms
        # Any: redis-py's answers are typed bytes-or-str-or-None whatever
        # decode_responses says; the shapes are checked here instead.
        self._redis: Any = open_redis(url)
        self._append = self._redis.register_script(APPEND)
        self._epoch = self._redis.register_script(EPOCH)
        self._claim = self._redis.register_script(CLAIM)
        self._release = self._redis.register_script(RELEASE)
        self._figures_script = self._redis.register_script(FIGURES)
        self._measuring = asyncio.Lock()
        self._figures: tuple[float, StoreStats] | None = None

    def _unavailable(self, exc: RedisError) -> StoreUnavailableError:
        self._figures = (time.monotonic(), self._unreachable())  # seen now: shown now
        log.warning("message store: %s", exc)
        return StoreUnavailableError(_UNAVAILABLE)

    def _window(self) -> str:
        return life_epoch("", self._clock(), self._max_age)[1:]

    async def append(self, stream: str, envelope: dict[str, Any]) -> tuple[int, str]:
        """Log ``envelope`` as the next message of ``stream``; its ``(seq, epoch)``."""
        if not (await self.append_published(stream, [(envelope, "", "")], "", "")).confirmed:
            raise UnconfirmedAppendError(str(envelope.get("id", "")))
        return int(envelope["seq"]), str(envelope["epoch"])

    async def append_published(
        self,
        stream: str,
        messages: Sequence[tuple[dict[str, Any], str, str]],
        channel: str,
        presence: str,
    ) -> Published:
        """Log ``messages`` of ``stream`` in order and publish each on ``channel``, in one script.

        Each message is ``(envelope, head, tail)``: its published text is the
        head, the envelope with its ``seq`` and ``epoch`` (also set in the
        envelope), and the tail; the messages go in one frame, a newline
        between two (:func:`~reference_server.cluster.wire.decode_all`). The
        subscribers of ``presence`` are counted in that same step. One
        script, one ``PUBLISH`` and one ``WAIT``, whatever their number.
        """
        args: list[Any] = [
            self._max_messages,
            f"{self._clock():.3f}",
            stream,
            self._max_age,
            self._window(),
            channel,
            presence,
            UPKEEP_SECONDS,
        ]
        for envelope, head, tail in messages:
            key, removes = snapshot_key(envelope)
            text = json.dumps(envelope, separators=(",", ":"))
            args += [text, key or "", "1" if removes else "0", head, tail]
        keys = [*_keys(stream), _history_key(stream), _active_key(stream), _upkeep_key(stream)]
        # One connection for the script and its WAIT: WAIT counts that connection's writes.
        try:
            async with self._redis.client() as connection:
                seqs, epoch, replicas, new, listeners = await self._append(
                    keys=keys, args=args, client=connection
                )
                if int(new):  # an organization (again) with a log: shown in the figures
                    await connection.sadd(_ORGS, stream.partition(":")[2])
                wanted = self._replicas_wanted(int(replicas))
                confirmed = wanted
                if wanted:
                    confirmed = int(
                        await connection.execute_command("WAIT", wanted, self._replica_timeout_ms)
                    )
        except RedisError as exc:
            raise self._unavailable(exc) from None
        if self._figures is not None and not self._figures[1].reachable:
            self._figures = None  # back: measure again
        for (envelope, _, _), seq in zip(messages, seqs, strict=True):
            envelope["seq"] = int(seq)
            envelope["epoch"] = str(epoch)
        if confirmed < wanted:
            log.warning(
                "%s seq %s-%s: %d of %d replicas confirmed within %d ms",
                stream, seqs[0], seqs[-1], confirmed, wanted, self._replica_timeout_ms,
            )  # fmt: skip
        return Published(int(listeners), confirmed >= wanted)

    def _replicas_wanted(self, connected: int) -> int:
        if self._min_replicas is not None:
            return self._min_replicas
        return min(1, connected)

    async def _position(self, stream: str) -> tuple[str, int]:
        _, seq_key, epoch_key, _, _ = _keys(stream)
        keys = [epoch_key, seq_key, _history_key(stream)]
        epoch, latest = await self._epoch(keys=keys, args=["", self._window()])
        return str(epoch), int(latest)

    async def read_since(self, stream: str, seq: int, epoch: str | None) -> ReplaySlice:
        """The logged messages of ``stream`` after ``seq``, and whether any may be missing.

        A malformed entry is skipped (and logged); the slice is then incomplete.
        """
        try:
            current, latest = await self._position(stream)
            if (epoch is not None and epoch != current) or seq >= latest:
                return ReplaySlice((), seq == latest and epoch in (None, current), current, latest)
            entries = await self._redis.xrange(_keys(stream)[0], min=f"{seq + 1}-0")
        except RedisError as exc:
            raise self._unavailable(exc) from None
        deadline = self._clock() - self._max_age
        parsed = [_entry(entry_id, fields, current) for entry_id, fields in entries]
        messages = tuple(
            message
            for item in parsed
            if item is not None and item[0] >= deadline and (message := item[1]).seq <= latest
        )
        first = messages[0].seq if messages else latest + 1
        complete = first == seq + 1 and None not in parsed
        return ReplaySlice(messages, complete, current, latest)

    async def snapshot(self, stream: str) -> list[StoredMessage]:
        """The latest message of each ``(event, target)`` of ``stream``, oldest first."""
        _, _, _, entries_key, times_key = _keys(stream)
        try:
            current, _ = await self._position(stream)
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hgetall(entries_key)
                pipe.zrange(times_key, 0, -1, withscores=True)
                entries, times = await pipe.execute()
        except RedisError as exc:
            raise self._unavailable(exc) from None
        deadline = self._clock() - self._max_age
        updated = dict(times)
        messages = []
        for key, value in entries.items():
            if updated.get(key, deadline) < deadline:
                continue  # aged out; the next append removes it
            number, _, text = value.partition(" ")
            envelope = _with_place(text, int(number), current) if number.isdigit() else None
            if envelope is None:
                log.error("skipping malformed snapshot entry of %s", stream)
                continue
            messages.append(StoredMessage(int(number), envelope))
        return sorted(messages, key=lambda m: m.seq)

    async def heads(self, streams: list[str]) -> dict[str, StreamHead]:
        """Where each of ``streams`` stands: each stream's epoch and counter, read with
        ``MGET`` (500 streams a command: parsing one reply per key cost 20 times more)
        in one pipelined round trip."""
        pipe = self._redis.pipeline(transaction=False)
        for start in range(0, len(streams), 500):
            keys: list[str] = []
            for name in streams[start : start + 500]:
                _, seq_key, epoch_key, _, _ = _keys(name)
                keys += (epoch_key, seq_key)
            pipe.mget(keys)
        try:
            answers = [value for chunk in await pipe.execute() for value in chunk]
        except RedisError as exc:
            raise self._unavailable(exc) from None
        return {
            name: StreamHead(epoch, int(latest or 0))
            for name, epoch, latest in zip(streams, answers[::2], answers[1::2], strict=True)
        }

    # -- idempotency keys (reference_server.idempotency) ---------------------------

    async def claim_key(
        self, key: str, fingerprint: str, owner: str, ttl_seconds: float, message_id: str
    ) -> KeyRecord | None:
        """Claim ``key`` unless it is held (one script: every node sees one winner)."""
        pending = json.dumps({"f": fingerprint, "o": owner, "m": message_id})
        try:
            held = await self._claim(
                keys=[f"{_PREFIX}idempotency:{key}"], args=[pending, int(ttl_seconds * 1000)]
            )
        except RedisError as exc:
            raise self._unavailable(exc) from None
        if held is None:
            return None
        record = json.loads(held)
        return KeyRecord(str(record["f"]), record.get("r"), record.get("m"))

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
            raise self._unavailable(exc) from None

    async def release_key(self, key: str, owner: str) -> None:
        """Forget the key if ``owner``'s claim is still pending."""
        # The claim's text, as claim_key wrote it: the script compares the whole value.
        try:
            name = f"{_PREFIX}idempotency:{key}"
            held = await self._redis.get(name)
            if held is not None and json.loads(held).get("o") == owner:
                await self._release(keys=[name], args=[held])
        except RedisError as exc:
            raise self._unavailable(exc) from None

    async def stats(self) -> StoreStats:
        """Streams, messages held, the oldest message's age; ``reachable`` if Redis answered.

        One script whatever the number of streams, at most one at a time, its
        answer reused for ``FIGURES_TTL`` seconds: an unauthenticated
        ``/health`` cannot make Redis work per request or per stream.
        """
        async with self._measuring:
            figures = self._figures
            if figures is not None and time.monotonic() - figures[0] < FIGURES_TTL:
                return figures[1]
            try:
                measured = await self._measure()
            except RedisError as exc:
                log.warning("message store: %s", exc)
                # Kept too: while Redis is away, /health does not wait for it every time.
                measured = self._unreachable()
            self._figures = (time.monotonic(), measured)
            return measured

    def _unreachable(self) -> StoreStats:
        return StoreStats(self.kind, 0, 0, None, reachable=False)

    async def _measure(self) -> StoreStats:
        now = self._clock()
        streams = count = 0
        oldest: float | None = None
        orgs = sorted(await self._redis.smembers(_ORGS))
        # One script per organization (its keys share one hash slot), all of them in one
        # pipelined round trip: one round trip each took 330 ms for 1,001 organizations.
        async with self._redis.pipeline(transaction=False) as pipe:
            for org in orgs:
                active = f"{_org_prefix(org)}active-streams"
                await self._figures_script(
                    keys=[active], args=[now - self._max_age, _org_prefix(org)], client=pipe
                )
            answers = await pipe.execute() if orgs else []
        for org, (held, entries, first) in zip(orgs, answers, strict=True):
            if not int(held):
                await self._redis.srem(_ORGS, org)  # silent for the age bound: forgotten
                continue
            streams += int(held)
            count += int(entries)
            if first and (oldest is None or float(first) < oldest):
                oldest = float(first)
        age = now - oldest if oldest is not None else None
        return StoreStats(self.kind, streams, count, age)

    async def ping(self) -> bool:
        """Whether the primary answers now (one round trip)."""
        try:
            await self._redis.ping()
        except RedisError as exc:
            log.debug("store ping: %s", exc)
            return False
        return True

    async def close(self) -> None:
        """Close the connection pool."""
        with contextlib.suppress(RedisError):
            await self._redis.aclose()
