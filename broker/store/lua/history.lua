-- history: a queue's per-minute history and its depth now, read-only (queue.history). The "hist" hash
-- is written by the scripts that move messages (flush_tallies in lua/include/lifecycle.lua).
--
-- KEYS[1]  hash    cfg of the queue (its other keys are derived with queue_keys, same hash tag)
-- ARGV[1]  project tag (v1:{P})
-- ARGV[2]  queue name
-- Returns: {depth now (available + delayed + in flight), field, value, field, value...} (the hash as stored)
-- Errors: QUEUE_NOT_FOUND.
--@include queue

local qk = target_queue()
require_cfg(qk)
local reply = {redis.call("ZCARD", qk.avail) + redis.call("ZCARD", qk.delayed) + redis.call("ZCARD", qk.inflight)}
for _, v in ipairs(redis.call("HGETALL", qk.hist)) do reply[#reply + 1] = v end
return reply
