"""The Lua scripts of the cluster registry: each change is one script, so it is atomic.

Every key is under ``ARGV[1]`` (the prefix, whose hash tag puts every key of the
registry in one slot; each script is also given the prefix as its one
declared key, so that a Redis Cluster client routes it there). A connection is ``conn_node``
(its node), ``conns`` (its API view, JSON), ``conn_org`` (the organization it
counts against, once authenticated) and ``conn:{sid}:rooms``; a room is
``room:{name}`` (its members) and ``node:{id}:rooms`` (member counts per node,
for listing); ``total`` and ``orgs`` are the counts the limits check. A
release reads what the connection holds and undoes exactly that, and a
connection that is no longer registered releases nothing: two nodes reaping
the same dead node, or a release racing a reap, cannot release twice.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "BEAT",
    "CLAIM_ORG",
    "CLAIM_SOCKET",
    "COUNT_REMOTE",
    "FORGET_NODE",
    "JOIN",
    "LEAVE",
    "REAP",
    "RELEASE",
    "SYNC",
]

_LIBRARY: Final = """
local P = ARGV[1]
-- Which Redis process this is: another one (restarted, or a replica promoted) may
-- lack writes it acknowledged, so a node that sees it change syncs in full.
local function run_id()
  return string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- Claims wait until every live node has registered its connections again after
-- Redis lost them (restarted empty): until then the counts are too low.
local function settling()
  local ready = redis.call('GET', P .. 'ready_at')
  return (not ready) or now_ms() < tonumber(ready)
end
local function join_room(node, sid, room)
  if redis.call('SADD', P .. 'conn:' .. sid .. ':rooms', room) == 1 then
    redis.call('SADD', P .. 'room:' .. room, sid)
    redis.call('HINCRBY', P .. 'node:' .. node .. ':rooms', room, 1)
  end
end
local function leave_room(node, sid, room)
  redis.call('SREM', P .. 'room:' .. room, sid)
  if redis.call('HINCRBY', P .. 'node:' .. node .. ':rooms', room, -1) <= 0 then
    redis.call('HDEL', P .. 'node:' .. node .. ':rooms', room)
  end
end
local function set_org(sid, org)
  redis.call('HSET', P .. 'conn_org', sid, org)
  redis.call('HINCRBY', P .. 'orgs', org, 1)
end
local function add(node, sid, info)
  redis.call('HSET', P .. 'conn_node', sid, node)
  redis.call('HSET', P .. 'conns', sid, info)
  redis.call('SADD', P .. 'node:' .. node .. ':conns', sid)
  redis.call('INCR', P .. 'total')
end
local function release(sid)
  local node = redis.call('HGET', P .. 'conn_node', sid)
  if not node then return 0 end
  redis.call('HDEL', P .. 'conn_node', sid)
  redis.call('HDEL', P .. 'conns', sid)
  redis.call('SREM', P .. 'node:' .. node .. ':conns', sid)
  redis.call('DECR', P .. 'total')
  local org = redis.call('HGET', P .. 'conn_org', sid)
  if org then
    redis.call('HDEL', P .. 'conn_org', sid)
    if redis.call('HINCRBY', P .. 'orgs', org, -1) <= 0 then
      redis.call('HDEL', P .. 'orgs', org)
    end
  end
  local rooms = P .. 'conn:' .. sid .. ':rooms'
  for _, room in ipairs(redis.call('SMEMBERS', rooms)) do
    leave_room(node, sid, room)
  end
  redis.call('DEL', rooms)
  return 1
end
"""

CLAIM_SOCKET: Final = (
    _LIBRARY
    + """
-- ARGV: prefix, node, sid, info, max_total. 1 admitted, 0 the cluster is full,
-- -2 the registry is being rebuilt (see settling).
if redis.call('HEXISTS', P .. 'conn_node', ARGV[3]) == 1 then return 1 end
if settling() then return -2 end
if tonumber(redis.call('GET', P .. 'total') or '0') >= tonumber(ARGV[5]) then return 0 end
add(ARGV[2], ARGV[3], ARGV[4])
return 1
"""
)

CLAIM_ORG: Final = (
    _LIBRARY
    + """
-- ARGV: prefix, sid, org, info, max_per_org. 1 counted, 0 the organization is full,
-- -1 the socket is not registered (Redis lost it: the heartbeat puts it back),
-- -2 the registry is being rebuilt (see settling).
if settling() then return -2 end
if redis.call('HEXISTS', P .. 'conn_node', ARGV[2]) == 0 then return -1 end
if redis.call('HEXISTS', P .. 'conn_org', ARGV[2]) == 1 then return 1 end
if tonumber(redis.call('HGET', P .. 'orgs', ARGV[3]) or '0') >= tonumber(ARGV[5]) then
  return 0
end
set_org(ARGV[2], ARGV[3])
redis.call('HSET', P .. 'conns', ARGV[2], ARGV[4])
return 1
"""
)

RELEASE: Final = (
    _LIBRARY
    + """
-- ARGV: prefix, sid.
return release(ARGV[2])
"""
)

JOIN: Final = (
    _LIBRARY
    + """
-- ARGV: prefix, sid, room, info.
local node = redis.call('HGET', P .. 'conn_node', ARGV[2])
if not node then return 0 end
join_room(node, ARGV[2], ARGV[3])
redis.call('HSET', P .. 'conns', ARGV[2], ARGV[4])
return 1
"""
)

LEAVE: Final = (
    _LIBRARY
    + """
-- ARGV: prefix, sid, room, info.
local node = redis.call('HGET', P .. 'conn_node', ARGV[2])
if not node then return 0 end
if redis.call('SREM', P .. 'conn:' .. ARGV[2] .. ':rooms', ARGV[3]) == 1 then
  leave_room(node, ARGV[2], ARGV[3])
end
redis.call('HSET', P .. 'conns', ARGV[2], ARGV[4])
return 1
"""
)

SYNC: Final = (
    _LIBRARY
    + """
-- ARGV: prefix, node, node info (JSON), connections (JSON list of {s, o, r, i}),
-- settle (ms).
-- The heartbeat: the node's entry, then its connections made to match what it
-- holds (a Redis restarted empty, or writes lost in an outage, are repaired here).
-- A registry found empty takes claims only after ``settle`` ms, time for every
-- live node to beat once (0 when a cluster starts: no node held anything).
-- Returns {1 if the node was still registered, 0 if it had been reaped or lost; the
-- Redis process's run id}.
local node = ARGV[2]
if redis.call('EXISTS', P .. 'ready_at') == 0 then
  redis.call('SET', P .. 'ready_at', now_ms() + tonumber(ARGV[5]))
end
local known = redis.call('ZSCORE', P .. 'nodes', node)
redis.call('ZADD', P .. 'nodes', now_ms(), node)
redis.call('HSET', P .. 'nodeinfo', node, ARGV[3])
local entries = cjson.decode(ARGV[4])
local mine = {}
for _, e in ipairs(entries) do mine[e.s] = true end
for _, sid in ipairs(redis.call('SMEMBERS', P .. 'node:' .. node .. ':conns')) do
  if not mine[sid] then release(sid) end
end
for _, e in ipairs(entries) do
  local owner = redis.call('HGET', P .. 'conn_node', e.s)
  if not owner then
    add(node, e.s, e.i)
    owner = node
  end
  if owner == node then
    redis.call('HSET', P .. 'conns', e.s, e.i)
    if e.o ~= '' and redis.call('HEXISTS', P .. 'conn_org', e.s) == 0 then set_org(e.s, e.o) end
    local wanted = {}
    for _, room in ipairs(e.r) do
      wanted[room] = true
      join_room(node, e.s, room)
    end
    local rooms = P .. 'conn:' .. e.s .. ':rooms'
    for _, room in ipairs(redis.call('SMEMBERS', rooms)) do
      if not wanted[room] then
        redis.call('SREM', rooms, room)
        leave_room(node, e.s, room)
      end
    end
  end
end
return {known and 1 or 0, run_id()}
"""
)

BEAT: Final = (
    _LIBRARY
    + """
-- ARGV: prefix, node, node info (JSON), changed connections (JSON list of {s, i}).
-- The heartbeat between two syncs, whose work goes with what changed, not with how
-- many connections the node holds: the node's entry, and the API view of the
-- connections that changed since the last beat. A node no longer registered, or a
-- registry being rebuilt, is left alone: the answer asks for a full SYNC.
-- Returns {1 if the node was still registered, else 0; the Redis process's run id}.
local node = ARGV[2]
if redis.call('EXISTS', P .. 'ready_at') == 0 or not redis.call('ZSCORE', P .. 'nodes', node) then
  return {0, run_id()}
end
redis.call('ZADD', P .. 'nodes', now_ms(), node)
redis.call('HSET', P .. 'nodeinfo', node, ARGV[3])
for _, e in ipairs(cjson.decode(ARGV[4])) do
  if redis.call('HGET', P .. 'conn_node', e.s) == node then
    redis.call('HSET', P .. 'conns', e.s, e.i)
  end
end
return {1, run_id()}
"""
)

REAP: Final = (
    _LIBRARY
    + """
-- ARGV: prefix, timeout in ms, the calling node. The nodes reaped, with their connections.
local deadline = now_ms() - tonumber(ARGV[2])
local reaped = {}
for _, node in ipairs(redis.call('ZRANGEBYSCORE', P .. 'nodes', '-inf', deadline)) do
  if node ~= ARGV[3] then
    for _, sid in ipairs(redis.call('SMEMBERS', P .. 'node:' .. node .. ':conns')) do
      release(sid)
    end
    redis.call('DEL', P .. 'node:' .. node .. ':conns', P .. 'node:' .. node .. ':rooms')
    redis.call('HDEL', P .. 'nodeinfo', node)
    redis.call('ZREM', P .. 'nodes', node)
    table.insert(reaped, node)
  end
end
return reaped
"""
)

FORGET_NODE: Final = (
    _LIBRARY
    + """
-- ARGV: prefix, node. A node that stops: its connections released, its entry gone.
local node = ARGV[2]
for _, sid in ipairs(redis.call('SMEMBERS', P .. 'node:' .. node .. ':conns')) do
  release(sid)
end
redis.call('DEL', P .. 'node:' .. node .. ':conns', P .. 'node:' .. node .. ':rooms')
redis.call('HDEL', P .. 'nodeinfo', node)
redis.call('ZREM', P .. 'nodes', node)
return 1
"""
)

COUNT_REMOTE: Final = (
    _LIBRARY
    + """
-- ARGV: prefix, node, rooms... How many sockets of other nodes are in any of the
-- rooms, each once: counted here so that a broadcast's answer does not ship the ids.
local seen = {}
local count = 0
for i = 3, #ARGV do
  for _, sid in ipairs(redis.call('SMEMBERS', P .. 'room:' .. ARGV[i])) do
    if not seen[sid] then
      seen[sid] = true
      if redis.call('HGET', P .. 'conn_node', sid) ~= ARGV[2] then count = count + 1 end
    end
  end
end
return count
"""
)
