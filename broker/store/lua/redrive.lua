-- redrive: move dead letters of a queue back to it with a fresh retry budget (queue.dlq.redrive).
-- One message by id, or all (dead-lettered at or after `since`, at most `max`, oldest first).
-- A dead letter in flight in a named dead-letter queue is skipped (also when named by id: redriven 0).
--
-- KEYS[1]  hash    cfg of the queue (its other keys are derived with queue_keys, same hash tag)
-- KEYS[2]  string  idempotency record (the tag when there is no key)
-- KEYS[3]  hash    the project's account (lua/include/account.lua)
-- ARGV[1]  project tag (v1:{P})
-- ARGV[2]  queue name
-- ARGV[3]  now, ms
-- ARGV[4]  fingerprint, "" without an idempotency key
-- ARGV[5]  message id, "" for all
-- ARGV[6]  since, ms ("-inf" for all)
-- ARGV[7]  max messages, "" for no limit
-- Returns: {redriven}
-- Errors: QUEUE_NOT_FOUND, MESSAGE_NOT_FOUND (the id is not a dead letter of this queue),
--         LEASE_EXPIRED (the id is leased from the dead-letter queue: in flight there, not redrivable
--         until that lease ends), IDEMPOTENCY_KEY_REUSED; the account's (UNAUTHORIZED, INSUFFICIENT_CREDIT).
--@include lifecycle
--@include idem
--@include account

local qk = target_queue()
local now = to_int(ARGV[3], "now")
local cached = idem_lookup(KEYS[2], ARGV[4])
if cached then return cached end
local cfg = require_cfg(qk)
local acct = account_open(KEYS[3], ARGV[1], "queue.dlq.redrive", 1)
local max = nil
if ARGV[7] ~= "" then max = to_int(ARGV[7], "max", 1) end
if ARGV[6] ~= "-inf" then to_int(ARGV[6], "since") end
maintain_with_dlq(qk, cfg, now, 1000)

-- Bring back the dead letter `member` (where\0id); returns "moved", "gone" (stale entry removed) or
-- "skipped" (in flight in its dead-letter queue).
local function redrive(member, strict)
  local where, id = string.match(member, "^(.-)%z(.*)$")
  local wk = queue_keys(qk.tag, where)
  local m = msg_get(wk, id)
  if not m then
    redis.call("ZREM", qk.dlqidx, member)
    if strict then fail("MESSAGE_NOT_FOUND", "message '" .. id .. "' is not a dead letter of this queue", "message_id") end
    return "gone"
  end
  if where == qk.name then
    redis.call("ZREM", qk.dead, id)
  else
    if redis.call("ZSCORE", wk.inflight, id) then
      if strict then
        fail("LEASE_EXPIRED", "message '" .. id .. "' is in flight in dead-letter queue '" .. where .. "'", "message_id")
      end
      return "skipped"
    end
    local wcfg = load_cfg(wk)
    leave_waiting(wk, wcfg, id, m)
    redis.call("SREM", wk.foreign, id)
    redis.call("HDEL", wk.msgs, id)
    if wcfg.fifo then fifo_refresh(wk, group_of(m)) end
  end
  redis.call("ZREM", qk.dlqidx, member)
  m[F_ATTEMPTS] = 0
  m[F_SOURCE] = false
  m[F_DEAD] = false
  m[F_REASON] = false
  m[F_ERROR] = false
  m[F_DUE] = now
  m[F_DAYS] = cfg.retention_days
  msg_put(qk, id, m)
  enqueue(qk, cfg, id, m, now)
  return "moved"
end

local redriven = 0
if ARGV[5] ~= "" then
  local id = ARGV[5]
  local member = nil
  if redis.call("ZSCORE", qk.dlqidx, qk.name .. "\0" .. id) then
    member = qk.name .. "\0" .. id
  elseif cfg.dlq ~= "" and redis.call("ZSCORE", qk.dlqidx, cfg.dlq .. "\0" .. id) then
    member = cfg.dlq .. "\0" .. id
  else
    -- The dead letter may sit in a dead-letter queue this queue named earlier.
    for _, candidate in ipairs(redis.call("ZRANGEBYSCORE", qk.dlqidx, "-inf", "+inf")) do
      if string.sub(candidate, -(#id + 1)) == "\0" .. id then member = candidate break end
    end
    if not member then fail("MESSAGE_NOT_FOUND", "message '" .. id .. "' is not a dead letter of this queue", "message_id") end
  end
  if redrive(member, true) == "moved" then redriven = 1 end
else
  local offset = 0
  while not max or redriven < max do
    local page = redis.call("ZRANGEBYSCORE", qk.dlqidx, ARGV[6], "+inf", "LIMIT", offset, 500)
    if #page == 0 then break end
    for _, member in ipairs(page) do
      if max and redriven >= max then break end
      local outcome = redrive(member, false)
      if outcome == "moved" then
        redriven = redriven + 1
      elseif outcome == "skipped" then
        offset = offset + 1
      end
    end
  end
end
if redriven > 0 then
  notify(qk)
  tally(qk, "redriven", redriven)
end
flush_tallies()
account_settle(acct, now)
local reply = {redriven}
idem_store(KEYS[2], ARGV[4], reply)
return reply
