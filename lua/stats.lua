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

-- Whatever maintenance did not reach yet is counted where it belongs at `now`.
local due = redis.call("ZCOUNT", qk.delayed, "-inf", now)
local ended = redis.call("ZCOUNT", qk.inflight, "-inf", now)
local available = redis.call("ZCARD", qk.avail) + due + ended
local in_flight = redis.call("ZCARD", qk.inflight) - ended
local delayed = redis.call("ZCARD", qk.delayed) - due
local dlq = redis.call("ZCARD", qk.dlqidx)

-- Oldest available: the lowest sequence within each priority band (FIFO: one band, scored by sequence).
local oldest = -1
local bands = {"-inf"}
if not cfg.fifo then bands = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9} end
for _, band in ipairs(bands) do
  local first
  if band == "-inf" then
    first = redis.call("ZRANGE", qk.avail, 0, 0)
  else
    local low = band * PRIORITY_STEP
    first = redis.call("ZRANGEBYSCORE", qk.avail, low, "(" .. (low + PRIORITY_STEP), "LIMIT", 0, 1)
  end
  if #first > 0 then
    local m = msg_get(qk, first[1])
    if m and (oldest < 0 or m[F_ENQUEUED] < oldest) then oldest = m[F_ENQUEUED] end
  end
end
return {available, in_flight, delayed, dlq, oldest}
