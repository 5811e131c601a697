-- stats: counts of a queue (queue.stats), after applying due delays, ended leases and retention (in the
-- queue and in its named dead-letter queue, where its dead letters may wait).
--
-- KEYS[1]  hash    cfg of the queue (its other keys are derived with queue_keys, same hash tag)
-- ARGV[1]  project tag (v1:{P})
-- ARGV[2]  queue name
-- ARGV[3]  now, ms
-- ARGV[4]  maintenance limit per structure
-- Returns: {available, in_flight, delayed, dlq, oldest_enqueued_ms or -1}
-- Errors: QUEUE_NOT_FOUND.
--@include lifecycle

local qk = target_queue()
local now = to_int(ARGV[3], "now")
local cfg = require_cfg(qk)
maintain_with_dlq(qk, cfg, now, to_int(ARGV[4], "limit", 1))
flush_tallies()

-- Whatever maintenance did not reach yet is counted where it belongs at `now`.
local due = redis.call("ZCOUNT", qk.delayed, "-inf", now)
local ended = redis.call("ZCOUNT", qk.inflight, "-inf", now)
local available = redis.call("ZCARD", qk.avail) + due + ended
local in_flight = redis.call("ZCARD", qk.inflight) - ended
local delayed = redis.call("ZCARD", qk.delayed) - due
local dlq = redis.call("ZCARD", qk.dlqidx)

local oldest = oldest_available(qk, cfg)
return {available, in_flight, delayed, dlq, oldest}
