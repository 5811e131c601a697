-- update_queue: change a queue's settings (queue.update). Messages already queued keep the retention
-- deadline and priority order they were given when they were enqueued.
--
-- KEYS[1]  hash    cfg of the queue (its other keys are derived with queue_keys, same hash tag)
-- KEYS[2]  string  idempotency record (the tag when there is no key)
-- KEYS[3]  hash    the project's account (lua/include/account.lua)
-- ARGV[1]  project tag (v1:{P})
-- ARGV[2]  queue name
-- ARGV[3]  fingerprint, "" without an idempotency key
-- ARGV[4]  now, ms
-- ARGV[5..] field, value pairs among: dlq (name, "" to clear), max_retries, retention_days, visibility, priority
-- Returns: cfg_reply (see include/queue.lua)
-- Errors: VALIDATION_ERROR (the queue names itself as DLQ), QUEUE_NOT_FOUND (queue or dead-letter queue),
--         IDEMPOTENCY_KEY_REUSED; the account's (UNAUTHORIZED, INSUFFICIENT_CREDIT).
--@include queue
--@include idem
--@include account

local qk = target_queue()
local cached = idem_lookup(KEYS[2], ARGV[3])
if cached then return cached end
local now = to_int(ARGV[4], "now")
local acct = account_open(KEYS[3], ARGV[1], "queue.update", 1)
local cfg = require_cfg(qk)
-- Only these settings may change; numbers are checked because every script reads them back.
local MIN = {max_retries = 0, retention_days = 1, visibility = 0}
local changes = {}
for i = 5, #ARGV, 2 do
  local field, value = ARGV[i], ARGV[i + 1]
  if MIN[field] then
    value = tostring(to_int(value, field, MIN[field]))
  elseif field == "priority" then
    if value ~= "0" and value ~= "1" then fail("INTERNAL", "argument priority is not 0|1") end
  elseif field ~= "dlq" or value == nil then
    fail("INTERNAL", "argument " .. field .. " is not a setting that can change")
  end
  changes[field] = value
end
if changes.dlq == qk.name then
  fail("VALIDATION_ERROR", "a queue cannot be its own dead-letter queue", "dead_letter_queue")
end

if changes.dlq and changes.dlq ~= "" and changes.dlq ~= cfg.dlq then
  if redis.call("EXISTS", queue_key(qk.tag, changes.dlq, "cfg")) == 0 then
    fail("QUEUE_NOT_FOUND", "dead-letter queue '" .. changes.dlq .. "' does not exist", "dead_letter_queue")
  end
end
if changes.dlq and changes.dlq ~= cfg.dlq then
  if cfg.dlq ~= "" then redis.call("SREM", queue_key(qk.tag, cfg.dlq, "refs"), qk.name) end
  if changes.dlq ~= "" then redis.call("SADD", queue_key(qk.tag, changes.dlq, "refs"), qk.name) end
end
for field, value in pairs(changes) do redis.call("HSET", qk.cfg, field, value) end
-- The bounds of the retention of the messages held (include/queue.lua), when the queue keeps them.
if changes.retention_days and redis.call("HEXISTS", qk.cfg, "retention_max_days") == 1 then
  local days = tonumber(changes.retention_days)
  redis.call("HSET", qk.cfg, "retention_min_days", math.min(cfg.min_days, days),
    "retention_max_days", math.max(cfg.max_days, days))
end
local reply = cfg_reply(qk)
idem_store(KEYS[2], ARGV[3], reply)
account_settle(acct, now)
return reply
