-- queue_metrics: what /metrics reports of one page of a project's queues, read-only (nothing is applied:
-- what is due but not yet maintained is counted where it belongs at `now`, as stats does).
--
-- KEYS[1]  zset    the project's queue names (v1:{P}:queues)
-- ARGV[1]  project tag (v1:{P})
-- ARGV[2]  now, ms
-- ARGV[3]  last name of the previous page, "" for the first page
-- ARGV[4]  page size
-- Returns: {more 0|1, per queue: {name, available, in_flight, delayed, dead_letter, oldest_enqueued_ms or -1,
--   published, delivered, acked, nacked, lease_expired, dead_lettered, redriven, purged, push_success,
--   push_failure, push_dead_lettered}...}
-- Errors: none.
--@include lifecycle

local COUNTERS = {"published", "delivered", "acked", "nacked", "lease_expired", "dead_lettered", "redriven", "purged",
  "push_success", "push_failure", "push_dead_lettered"}
local now = to_int(ARGV[2], "now")
local limit = to_int(ARGV[4], "limit", 1)
local start = "-"
if ARGV[3] ~= "" then start = "(" .. ARGV[3] end
local now_s = string.format("%d", now)
local names = redis.call("ZRANGEBYLEX", KEYS[1], start, "+", "LIMIT", 0, limit + 1)
local reply = {0}
for i, name in ipairs(names) do
  if i > limit then
    reply[1] = 1
    break
  end
  local qk = queue_keys(ARGV[1], name)
  local cfg = load_cfg(qk)
  local due = redis.call("ZCOUNT", qk.delayed, "-inf", now_s)
  local ended = redis.call("ZCOUNT", qk.inflight, "-inf", now_s)
  local in_flight = redis.call("ZCARD", qk.inflight)
  local delayed = redis.call("ZCARD", qk.delayed)
  local oldest = cfg and oldest_available(qk, cfg) or -1
  local row = {name, redis.call("ZCARD", qk.avail) + due + ended, in_flight - ended, delayed - due,
    redis.call("ZCARD", qk.dlqidx), oldest}
  for _, count in ipairs(read_counters(qk, COUNTERS)) do row[#row + 1] = count end
  reply[#reply + 1] = row
end
return reply
