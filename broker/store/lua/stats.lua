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

-- Oldest available: the lowest sequence within each band (9 - priority; FIFO: one band), over both
-- regions of avail (include/lifecycle.lua), by the enqueued time its id holds.
local fronts = {} -- band -> {id, score within its region}
local regions = {0}
if redis.call("EXISTS", qk.expiry) == 1 then regions[2] = -APART end -- "expiry" indexes the ones apart
local last_band = cfg.fifo and 0 or 9
for _, region in ipairs(regions) do
  local from = region
  while true do
    local head = redis.call("ZRANGEBYSCORE", qk.avail, from, "(" .. (region + APART), "WITHSCORES", "LIMIT", "0", "1")
    if #head == 0 then break end
    local score = tonumber(head[2]) - region
    local band = math.floor(score / PRIORITY_STEP)
    if not fronts[band] or score < fronts[band][2] then fronts[band] = {head[1], score} end
    if band >= last_band then break end
    from = region + (band + 1) * PRIORITY_STEP
  end
end
local oldest = -1
for _, front in pairs(fronts) do
  if redis.call("HEXISTS", qk.msgs, front[1]) == 1 then
    local enqueued = enqueued_of(front[1])
    if oldest < 0 or enqueued < oldest then oldest = enqueued end
  end
end
return {available, in_flight, delayed, dlq, oldest}
