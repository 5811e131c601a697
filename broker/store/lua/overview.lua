-- overview: one page of a project's queues with their counts and counters, read-only (queue.overview,
-- the dashboard's queue table; nothing is applied: what is due but not yet maintained is counted where
-- it belongs at `now`, as stats does).
--
-- KEYS[1]  zset    the project's queue names (v1:{P}:queues)
-- ARGV[1]  project tag (v1:{P})
-- ARGV[2]  now, ms
-- ARGV[3]  last name of the previous page, "" for the first page
-- ARGV[4]  page size
-- Returns: {more 0|1, per queue: {name, type, available, in_flight, delayed, dead_letter, oldest_enqueued_ms or -1,
--   published, acked, dead_lettered, push_success, push_failure, push_dead_lettered, published_recent,
--   acked_recent}...}; *_recent: published / acked in the current minute and the RECENT_MINUTES - 1 before it,
--   from the queue's history ("<minute>:p" and ":a" of its hist hash, "<minute>+p" and "+a" for the open
--   minute, lua/include/lifecycle.lua).
-- Errors: none.
--@include lifecycle

local OVERVIEW_COUNTERS = {"published", "acked", "dead_lettered", "push_success", "push_failure",
  "push_dead_lettered"}
local now_s = string.format("%d", to_int(ARGV[2], "now"))
local limit = to_int(ARGV[4], "limit", 1)
local start = "-"
if ARGV[3] ~= "" then start = "(" .. ARGV[3] end
local RECENT_MINUTES = 5
local minute = math.floor(to_int(ARGV[2], "now") / 60000)
local recent_fields = {}
for back = RECENT_MINUTES - 1, 0, -1 do
  local m = string.format("%d", minute - back)
  for _, sep in ipairs({":", "+"}) do -- a closed minute's counts, or the open minute's (not folded yet)
    recent_fields[#recent_fields + 1] = m .. sep .. "p"
    recent_fields[#recent_fields + 1] = m .. sep .. "a"
  end
end
local names = redis.call("ZRANGEBYLEX", KEYS[1], start, "+", "LIMIT", 0, limit + 1)
local reply = {0}
for i, name in ipairs(names) do
  if i > limit then
    reply[1] = 1
    break
  end
  local qk = queue_keys(ARGV[1], name)
  local cfg = load_cfg(qk)
  if cfg then
    local due = redis.call("ZCOUNT", qk.delayed, "-inf", now_s)
    local ended = redis.call("ZCOUNT", qk.inflight, "-inf", now_s)
    local row = {name, cfg.type, redis.call("ZCARD", qk.avail) + due + ended, redis.call("ZCARD", qk.inflight) - ended,
      redis.call("ZCARD", qk.delayed) - due, redis.call("ZCARD", qk.dlqidx), oldest_available(qk, cfg)}
    for _, count in ipairs(read_counters(qk, OVERVIEW_COUNTERS)) do row[#row + 1] = count end
    local published, acked = 0, 0
    local recent = redis.call("HMGET", qk.hist, unpack(recent_fields))
    for j = 1, #recent, 2 do
      published = published + (tonumber(recent[j]) or 0)
      acked = acked + (tonumber(recent[j + 1]) or 0)
    end
    row[#row + 1] = published
    row[#row + 1] = acked
    reply[#reply + 1] = row
  end
end
return reply
