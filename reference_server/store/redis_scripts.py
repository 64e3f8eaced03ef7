"""The Lua scripts of the Redis store (:mod:`.redis`): each change of a stream is one script.

The append is the broadcast path's one Redis request (for a cluster it also
publishes), so it does the least work per message that keeps the bounds: per
message one ``XADD``; per script one read of the stream's state (``MGET``),
one write of the counter, of the snapshot and of the times, one ``PUBLISH``
of every message together. The bounds' upkeep (the age trims, the expiries,
the organization's active streams) runs at most once per
:data:`UPKEEP_SECONDS` of a stream, and at once when a write may have left a
key without its expiry. What may lag by that much is harmless: entries past
the age bound are never read (the readers filter by time), a silent stream
expires that much later, and the snapshot's count bound is kept at every
append that adds an entry.
"""

from __future__ import annotations

from typing import Final

__all__ = ["APPEND", "CLAIM", "EPOCH", "FIGURES", "RELEASE", "UPKEEP_SECONDS"]

UPKEEP_SECONDS: Final = 1.0
"""Longest time between two upkeeps of a stream that keeps appending (seconds of the
store's clock). Keys live this much past the age bound, so that a silent stream's
last entry is as old as the bound before its keys go."""

_HISTORY: Final = """
-- A field of INFO's text. A plain find, not a pattern: matching a pattern at every
-- place of the text was a tenth of an append's Redis CPU.
local function field(info, name)
  local at = string.find(info, name, 1, true)
  if not at then return nil end
  local value = at + #name
  local stop = string.find(info, '\\r', value, true) or (#info + 1)
  return string.sub(info, value, stop - 1)
end
-- The primary's replication history: its id, whether it was promoted from a
-- replica (master_replid2 set), and its replicas.
local function history()
  local info = redis.call('INFO', 'replication')
  local replid = field(info, '\\nmaster_replid:')
  local promoted = string.find(field(info, '\\nmaster_replid2:') or '', '[^0]') ~= nil
  local replicas = tonumber(field(info, '\\nconnected_slaves:') or '0')
  return replid, promoted, replicas
end
-- The stream's life goes on unless it was written on another primary's history
-- and this primary was promoted from a replica, which may lack appends that
-- clients received: then its next life starts (a new epoch).
local function living(epoch, written, replid, promoted)
  return epoch and not (promoted and written ~= replid)
end
"""

APPEND: Final = (
    _HISTORY
    + """
-- KEYS: log, seq, epoch, snapshot, snapshot times, history, the organization's active
-- streams, upkeep (when the next upkeep is due).
-- ARGV: max count, now, stream, max age, window, channel ('' publishes nothing), presence
-- channel, upkeep interval, then 5 per message: envelope, snapshot key, removes, head, tail.
-- Appends the messages in order and publishes them, in order, as one frame: each message
-- is head, the envelope with its place, tail; a newline between two.
-- Expiries: seq is written with its expiry at the end of every append, and epoch and
-- history with theirs when they change, so the epoch never outlives the counter (a
-- counter gone under a living epoch would reuse its seqs). The other keys get theirs at
-- the upkeep.
local max = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local deadline = now - tonumber(ARGV[4])
-- Numbers go to Redis as text made once: each conversion of a Lua number is a printf.
local ttl = tostring(math.ceil((tonumber(ARGV[4]) + tonumber(ARGV[8])) * 1000))
local replid, promoted, replicas = history()
local state = redis.call('MGET', KEYS[3], KEYS[6], KEYS[2], KEYS[8])
local epoch, written = state[1], state[2]
local seq = tonumber(state[3]) or 0
local upkeep = not state[4] or now >= tonumber(state[4])
if not living(epoch, written, replid, promoted) then
  if not epoch then
    seq = 0  -- a new life starts at seq 1
  end  -- after a promotion the log is still there: its seq goes on, in a new epoch
  epoch = string.sub(replid, 1, 8) .. '.' .. ARGV[5]
  redis.call('SET', KEYS[3], epoch, 'PX', ttl)
  upkeep = true
end
if written ~= replid then
  redis.call('SET', KEYS[6], replid, 'PX', ttl)
end
local seqs, frames, latest, order = {}, {}, {}, {}
local removed = false
for i = 9, #ARGV, 5 do
  local envelope, key = ARGV[i], ARGV[i + 1]
  seq = seq + 1
  local number = tostring(seq)
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], number .. '-0', 'e', envelope, 't', ARGV[2])
  if key ~= '' then
    if latest[key] == nil then table.insert(order, key) end
    if ARGV[i + 2] == '1' then
      latest[key] = false
    else
      latest[key] = number .. ' ' .. envelope
    end
  end
  if ARGV[6] ~= '' then
    -- Pieces, joined once: Redis's Lua hashes every byte of each string it makes.
    if #frames > 0 then table.insert(frames, '\\n') end
    table.insert(frames, ARGV[i + 3])
    table.insert(frames, '{"seq":')
    table.insert(frames, number)
    table.insert(frames, ',"epoch":"')
    table.insert(frames, epoch)
    table.insert(frames, '",')
    table.insert(frames, string.sub(envelope, 2))
    table.insert(frames, ARGV[i + 4])
  end
  table.insert(seqs, seq)
end
-- The snapshot: the last word of the script on each key, set or removed.
local set, times, gone = {}, {}, {}
for _, key in ipairs(order) do
  if latest[key] then
    table.insert(set, key)
    table.insert(set, latest[key])
    table.insert(times, ARGV[2])
    table.insert(times, key)
  else
    table.insert(gone, key)
  end
end
local function forget(keys)  -- snapshot entries, from the hash and the times alike
  redis.call('HDEL', KEYS[4], unpack(keys))
  redis.call('ZREM', KEYS[5], unpack(keys))
  removed = true
end
local added = 0
if #set > 0 then
  added = redis.call('HSET', KEYS[4], unpack(set))
  redis.call('ZADD', KEYS[5], unpack(times))
end
if #gone > 0 then
  forget(gone)
end
if #frames > 0 then
  redis.call('PUBLISH', ARGV[6], table.concat(frames))
end
-- The snapshot's bounds: at the upkeep, and whenever it has new entries (its count).
if upkeep or added > 0 then
  local stale = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', '(' .. deadline, 'LIMIT', 0, 100)
  local extra = math.min(redis.call('ZCARD', KEYS[5]) - #stale - max, 100)
  if extra > 0 then
    for _, key in ipairs(redis.call('ZRANGE', KEYS[5], #stale, #stale + extra - 1)) do
      table.insert(stale, key)
    end
  end
  if #stale > 0 then
    forget(stale)
  end
end
local new = 0
if upkeep then
  -- The age bound: entries before the first young one go (an entry without a time too).
  -- The oldest entry alone is read first: it is young on almost every upkeep.
  local function entry_time(entry)
    for i = 1, #entry[2] - 1, 2 do
      if entry[2][i] == 't' then return tonumber(entry[2][i + 1]) or 0 end
    end
    return 0
  end
  local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
  if oldest and entry_time(oldest) < deadline then
    local young = nil
    for _, entry in ipairs(redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 100)) do
      young = entry[1]
      if entry_time(entry) >= deadline then break end
      young = (tonumber(string.match(young, '^%d+')) + 1) .. '-0'
    end
    redis.call('XTRIM', KEYS[1], 'MINID', young)
  end
  for _, i in ipairs({1, 3, 4, 5, 6}) do  -- the counter last, below
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
  new = redis.call('EXISTS', KEYS[7]) == 0 and 1 or 0
  redis.call('ZADD', KEYS[7], now, ARGV[3])
  redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', '(' .. deadline)
  redis.call('PEXPIRE', KEYS[7], ttl)
end
if removed then
  -- The snapshot may be gone with its last entry, and written again before the upkeep
  -- is due, without an expiry: the next append keeps it.
  redis.call('DEL', KEYS[8])
elseif upkeep then
  redis.call('SET', KEYS[8], tostring(now + tonumber(ARGV[8])), 'PX', ttl)
end
-- Last, so that its expiry is the latest: the epoch never outlives the counter (Redis
-- reads the clock at each command, not once per script).
redis.call('SET', KEYS[2], seq, 'PX', ttl)
local listeners = 0
if ARGV[6] ~= '' then
  listeners = redis.call('PUBSUB', 'NUMSUB', ARGV[7])[2]
end
return {seqs, epoch, replicas, new, listeners}
"""
)
"""The append of one or more messages of a stream, published to a cluster's channel in the
same step when a channel is given (see :mod:`reference_server.cluster.fanout`): every
node sees a stream in ``seq`` order. The subscribers of the presence channel are
counted in that step too (no second round trip)."""

EPOCH: Final = (
    _HISTORY
    + """
-- KEYS: epoch, seq, history. Writes nothing: readers cost nothing.
local replid, promoted = history()
local epoch = redis.call('GET', KEYS[1])
local latest = tonumber(redis.call('GET', KEYS[2]) or '0')
if living(epoch, redis.call('GET', KEYS[3]), replid, promoted) then
  return {epoch, latest}
end
if not epoch then
  latest = 0  -- no life: the next one starts at seq 1
end
return {string.sub(replid, 1, 8) .. '.' .. ARGV[2], latest}
"""
)

FIGURES: Final = """
-- KEYS: one organization's active streams. ARGV: the age bound's deadline, the
-- organization's key prefix. Its streams, entries held and the oldest entry's time.
local streams = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf')
local count = 0
local oldest = nil
for _, stream in ipairs(streams) do
  local log = ARGV[2] .. string.match(stream, '^[^:]+') .. ':log'
  count = count + redis.call('XLEN', log)
  local first = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)[1]
  if first then
    for i = 1, #first[2] - 1, 2 do
      local at = first[2][i] == 't' and tonumber(first[2][i + 1])
      if at and (oldest == nil or at < oldest) then oldest = at end
    end
  end
end
return {#streams, count, oldest and tostring(oldest) or ''}
"""


CLAIM: Final = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return false
end
return redis.call('GET', KEYS[1])
"""

RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
