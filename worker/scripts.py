"""The Lua scripts of the run record (worker.runs), together: each is one step in Redis, so no
other worker or sweeper can see a flow half-way between two states.

The lease itself is redis-py's Lock (worker.lease); these only read its key.
"""

from __future__ import annotations

# Bump the generation of a flow whose worker is gone; returns the new generation or 0.
# A flow whose destination's lease is held (by its own live worker, or by another run writing
# there) is left alone. The new message counts as claimed, not sent, until SENT says so.
# KEYS: flow hash. ARGV: worker-key prefix, message, now.
RECLAIM = """
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'running' and state ~= 'queued' and state ~= 'retrying' then return 0 end
local lock = redis.call('HGET', KEYS[1], 'lock')
if lock and redis.call('EXISTS', lock) == 1 then return 0 end
if state ~= 'running' then
  local w = redis.call('HGET', KEYS[1], 'worker')
  if (not w) or w == '' then return 0 end
  if redis.call('EXISTS', ARGV[1] .. w) == 1 then return 0 end
end
local gen = redis.call('HINCRBY', KEYS[1], 'generation', 1)
redis.call('HSET', KEYS[1], 'state', 'queued', 'worker', '', 'message', ARGV[2],
           'updated', ARGV[3], 'submitted', ARGV[3])
redis.call('HDEL', KEYS[1], 'sent')
return gen
"""

# Record which worker holds a flow's message, unless the flow already runs or ended.
RECEIVED = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'queued' or state == 'retrying' then
  redis.call('HSET', KEYS[1], 'worker', ARGV[1])
  return 1
end
return 0
"""

# Mark a flow sent, unless it already ended (a flow is marked queued only once its message is
# on the broker; see worker.runs.sent). KEYS: flow hash. ARGV: now.
SENT = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'pending' then
  redis.call('HSET', KEYS[1], 'state', 'queued', 'updated', ARGV[1])
end
redis.call('HSET', KEYS[1], 'sent', 1)
return 1
"""

# A flow claimed for sending more than ARGV[2] seconds ago whose message never reached the
# broker (its sender was killed in between): claim it again, to be sent again. Returns 1 if so.
# A flow whose enqueuer is still sending (its key lives) is left alone.
# KEYS: flow hash, the run's sender key. ARGV: now, grace seconds, message.
UNSENT = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local h = redis.call('HMGET', KEYS[1], 'state', 'submitted', 'sent')
if h[3] or not h[2] then return 0 end
if h[1] ~= 'pending' and h[1] ~= 'queued' then return 0 end
if tonumber(ARGV[1]) - tonumber(h[2]) < tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'submitted', ARGV[1], 'message', ARGV[3], 'updated', ARGV[1])
return 1
"""

# Start an attempt whose lease was just taken: unless the flow ended or this message is an
# old copy, mark it running. KEYS: flow hash. ARGV: generation, worker, task id, now.
# Returns {verdict, starts, ends, retries}: verdict 'ok' or 'stale' (ended, superseded, or
# its run is gone: a Redis that lost its data must not get half a run back).
START = """
local st = redis.call('HMGET', KEYS[1], 'state', 'generation', 'ends', 'retries')
if (not st[1]) or st[1] == 'success' or st[1] == 'failed' or st[1] == 'skipped' then
  return {'stale', 0, 0, 0}
end
if tonumber(ARGV[1]) < tonumber(st[2] or '1') then return {'stale', 0, 0, 0} end
local starts = redis.call('HINCRBY', KEYS[1], 'starts', 1)
redis.call('HSET', KEYS[1], 'state', 'running', 'worker', ARGV[2], 'task_id', ARGV[3],
  'message', '', 'rows', 0, 'batches', 0, 'memory_bytes', 0, 'seconds', 0,
  'summary', '', 'started', ARGV[4], 'updated', ARGV[4])
return {'ok', starts, tonumber(st[3] or '0'), tonumber(st[4] or '0')}
"""

# End an attempt: record the outcome and count it, only while the lease is still ours (an
# attempt that lost its lease records nothing: the flow is, or will be, re-sent). The caller
# then releases the lease. A final outcome is counted once per run; the return says whether
# the run is complete and who waits on the flow. KEYS: flow hash, lock key, run hash.
# ARGV: token, final (1/0), field, value... Returns {ended, total, dependants}; ended = -2
# when the lease was not ours.
END = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return {-2, 0, ''} end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('HINCRBY', KEYS[1], 'ends', 1)
local ended = -1
if ARGV[2] == '1' and redis.call('HSETNX', KEYS[1], 'counted', 1) == 1 then
  ended = redis.call('HINCRBY', KEYS[3], 'ended', 1)
end
local total = tonumber(redis.call('HGET', KEYS[3], 'total') or '0')
return {ended, total, redis.call('HGET', KEYS[1], 'dependants') or ''}
"""
