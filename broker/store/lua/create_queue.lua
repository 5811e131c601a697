-- create_queue: create a queue, or return it when it exists with the same configuration (queue.create).
--
-- KEYS[1]  hash    cfg of the queue (its other keys are derived with queue_keys, same hash tag)
-- KEYS[2]  zset    the project's queue names (v1:{P}:queues)
-- KEYS[3]  string  idempotency record (the tag when there is no key)
-- KEYS[4]  hash    the project's account (lua/include/account.lua)
-- ARGV[1]  project tag (v1:{P})
-- ARGV[2]  queue name
-- ARGV[3]  now, ms
-- ARGV[4]  fingerprint, "" without an idempotency key
-- ARGV[5]  type "standard" | "fifo"
-- ARGV[6]  dead-letter queue name, "" none
-- ARGV[7]  max_retries
-- ARGV[8]  message_retention_days
-- ARGV[9]  visibility_timeout_default, s
-- ARGV[10] enable_priority "1" | "0"
-- Returns: {created 0|1, cfg_reply...} (see cfg_reply in include/queue.lua)
-- Errors: VALIDATION_ERROR (the queue names itself as DLQ), QUEUE_NOT_FOUND (the dead-letter queue),
--         QUEUE_ALREADY_EXISTS, IDEMPOTENCY_KEY_REUSED; the account's (UNAUTHORIZED, INSUFFICIENT_CREDIT,
--         QUOTA_EXCEEDED: max_queues).
--@include queue
--@include idem
--@include account

local qk = target_queue()
local now = to_int(ARGV[3], "now")
local cached = idem_lookup(KEYS[3], ARGV[4])
if cached then return cached end
-- Settings are stored as given and read back with tonumber by every script: check them first.
if ARGV[5] ~= "standard" and ARGV[5] ~= "fifo" then fail("INTERNAL", "argument type is not standard|fifo") end
if ARGV[10] ~= "0" and ARGV[10] ~= "1" then fail("INTERNAL", "argument enable_priority is not 0|1") end
if ARGV[6] == qk.name then
  fail("VALIDATION_ERROR", "a queue cannot be its own dead-letter queue", "dead_letter_queue")
end
local wanted = {type = ARGV[5], dlq = ARGV[6], max_retries = tostring(to_int(ARGV[7], "max_retries", 0)),
  retention_days = tostring(to_int(ARGV[8], "retention_days", 1)),
  visibility = tostring(to_int(ARGV[9], "visibility", 0)), priority = ARGV[10]}
local acct = account_open(KEYS[4], ARGV[1], "queue.create", 1)

local existing = redis.call("HMGET", qk.cfg, "type", "dlq", "max_retries", "retention_days", "visibility", "priority")
if existing[1] then
  local same = existing[1] == wanted.type and (existing[2] or "") == wanted.dlq
    and existing[3] == wanted.max_retries and existing[4] == wanted.retention_days
    and existing[5] == wanted.visibility and existing[6] == wanted.priority
  if not same then
    fail("QUEUE_ALREADY_EXISTS", "queue '" .. qk.name .. "' exists with a different configuration", "name")
  end
  local reply = {0}
  for _, v in ipairs(cfg_reply(qk)) do reply[#reply + 1] = v end
  account_settle(acct, now)
  idem_store(KEYS[3], ARGV[4], reply)
  return reply
end

account_limit(acct, "max_queues", redis.call("ZCARD", KEYS[2]) + 1)
if wanted.dlq ~= "" then
  local dk = queue_keys(qk.tag, wanted.dlq)
  if redis.call("EXISTS", dk.cfg) == 0 then
    fail("QUEUE_NOT_FOUND", "dead-letter queue '" .. wanted.dlq .. "' does not exist", "dead_letter_queue")
  end
  redis.call("SADD", dk.refs, qk.name)
end
redis.call("HSET", qk.cfg, "type", wanted.type, "dlq", wanted.dlq, "max_retries", wanted.max_retries,
  "retention_days", wanted.retention_days, "visibility", wanted.visibility, "priority", wanted.priority,
  "created_ms", now, "retention_min_days", wanted.retention_days, "retention_max_days", wanted.retention_days,
  "band_expiry_ms", "inf") -- no message in a band yet (the band gate, lua/include/lifecycle.lua)
redis.call("ZADD", KEYS[2], 0, qk.name)
account_settle(acct, now)
local reply = {1}
for _, v in ipairs(cfg_reply(qk)) do reply[#reply + 1] = v end
idem_store(KEYS[3], ARGV[4], reply)
return reply
