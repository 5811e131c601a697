-- stats: counts of a queue (queue.stats), after applying due delays, ended leases and retention (in the
-- queue and in its named dead-letter queue, where its dead letters may wait).
--
-- KEYS[1]  hash    cfg of the queue (its other keys are derived with queue_keys, same hash tag)
-- KEYS[2]  hash    the project's account (lua/include/account.lua)
-- ARGV[1]  project tag (v1:{P})
-- ARGV[2]  queue name
-- ARGV[3]  now, ms
-- ARGV[4]  maintenance limit per structure
-- Returns: {available, in_flight, delayed, dlq, oldest_enqueued_ms or -1}
-- Errors: QUEUE_NOT_FOUND; the account's (UNAUTHORIZED, INSUFFICIENT_CREDIT).
--@include lifecycle
--@include account

local qk = target_queue()
local now = to_int(ARGV[3], "now")
local cfg = require_cfg(qk)
local acct = account_open(KEYS[2], ARGV[1], "queue.stats", 1)
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
account_settle(acct, now)
return {available, in_flight, delayed, dlq, oldest}
