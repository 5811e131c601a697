-- claim: lease up to `max` available messages of a queue (queue.consume).
-- Standard queues: highest priority first, then oldest. FIFO queues: for each ready group (oldest head
-- first), its consecutive due messages in order; the group is then busy until they are all settled.
-- Due delays, ended leases and retention are applied first, so a deadline holds with no worker running.
--
-- KEYS[1]  hash   cfg of the queue (its other keys are derived with queue_keys, same hash tag)
-- ARGV[1]  project tag (v1:{P})
-- ARGV[2]  queue name
-- ARGV[3]  now, ms
-- ARGV[4]  max messages, 1..100
-- ARGV[5]  visibility timeout, ms; "" = the queue's default
-- ARGV[6]  maintenance limit per structure
-- Returns: {next_wake_ms, [id, payload, priority, group|"", attempts, enqueued_ms, receipt, lease_deadline_ms]...}
--   next_wake_ms: earliest time something may become available (-1 unknown), for long-poll waiters.
-- Errors: QUEUE_NOT_FOUND.
--@include lifecycle

local qk = target_queue()
local now = to_int(ARGV[3], "now")
local max = to_int(ARGV[4], "max", 1)
local cfg = require_cfg(qk)
local visibility_ms = cfg.visibility_ms
if ARGV[5] ~= "" then visibility_ms = to_int(ARGV[5], "visibility", 0) end
maintain(qk, cfg, now, to_int(ARGV[6], "limit", 1))

local reply = {-1}
local deadline = now + visibility_ms

local function deliver(id, m)
  m[F_ATTEMPTS] = m[F_ATTEMPTS] + 1
  m[F_LEASE] = m[F_LEASE] + 1
  msg_put(qk, id, m)
  hold(qk, id, m, deadline)
  local n = #reply
  reply[n + 1] = id
  reply[n + 2] = m[F_PAYLOAD]
  reply[n + 3] = m[F_PRIORITY]
  reply[n + 4] = group_of(m)
  reply[n + 5] = m[F_ATTEMPTS]
  reply[n + 6] = m[F_ENQUEUED]
  reply[n + 7] = receipt_of(id, m)
  reply[n + 8] = deadline
end

local taken = 0
if not cfg.fifo then
  -- The first `max` in avail order: its own region, merged with the region kept apart (rarely used).
  local ids = {}
  local apart = {}
  if redis.call("EXISTS", qk.expiry) == 1 then -- "expiry" indexes exactly the ones kept apart
    apart = redis.call("ZRANGEBYSCORE", qk.avail, "-inf", "(0", "WITHSCORES", "LIMIT", 0, max)
  end
  if #apart == 0 then
    local popped = redis.call("ZPOPMIN", qk.avail, max)
    for i = 1, #popped, 2 do ids[#ids + 1] = popped[i] end
  else
    local front = redis.call("ZRANGEBYSCORE", qk.avail, 0, "+inf", "WITHSCORES", "LIMIT", 0, max)
    local a, f, kept_apart = 1, 1, {}
    while #ids < max and (a < #apart or f < #front) do
      if a < #apart and (f > #front or tonumber(apart[a + 1]) + APART < tonumber(front[f + 1])) then
        ids[#ids + 1] = apart[a]
        kept_apart[#kept_apart + 1] = apart[a]
        a = a + 2
      else
        ids[#ids + 1] = front[f]
        f = f + 2
      end
    end
    redis.call("ZREM", qk.avail, unpack(ids))
    if #kept_apart > 0 then redis.call("ZREM", qk.expiry, unpack(kept_apart)) end
  end
  for _, id in ipairs(ids) do
    local m = msg_get(qk, id)
    if m then
      deliver(id, m)
      taken = taken + 1
    end
  end
else
  local groups = redis.call("ZRANGEBYSCORE", qk.groups, "-inf", now, "LIMIT", 0, max)
  for _, group in ipairs(groups) do
    if taken >= max then break end
    local line = redis.call("ZRANGEBYLEX", qk.gq, "[" .. group .. "\0", "[" .. group .. "\0\255", "LIMIT", 0, max - taken)
    local took = 0
    for _, member in ipairs(line) do
      local id = fifo_member_id(member)
      local m = msg_get(qk, id)
      if m[F_DUE] > now then break end
      leave_waiting(qk, cfg, id, m)
      deliver(id, m)
      took = took + 1
    end
    if took > 0 then
      redis.call("HINCRBY", qk.gbusy, group, took)
      taken = taken + took
    end
    fifo_refresh(qk, group)
  end
end

-- When to look again: the next delayed message or the next lease deadline.
local wake = -1
local nd = redis.call("ZRANGE", qk.delayed, 0, 0, "WITHSCORES")
if #nd > 0 then wake = tonumber(nd[2]) end
local ni = redis.call("ZRANGE", qk.inflight, 0, 0, "WITHSCORES")
if #ni > 0 and (wake < 0 or tonumber(ni[2]) < wake) then wake = tonumber(ni[2]) end
reply[1] = wake
return reply
