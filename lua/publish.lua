-- publish: store and enqueue one or more messages (queue.publish and queue.publish_batch), all or nothing.
-- The idempotency checks (per request and per message) and the enqueue are this one atomic step.
--
-- KEYS[1]   hash    cfg of the queue (its other keys are derived with queue_keys, same hash tag)
-- KEYS[2]   string  project sequence (v1:{P}:seq)
-- KEYS[3]   string  idempotency record of the request (the tag when there is no key)
-- KEYS[4..] string  idempotency record of each message, in order (the tag when it has none)
-- ARGV[1]   project tag (v1:{P})
-- ARGV[2]   queue name
-- ARGV[3]   now, ms
-- ARGV[4]   request fingerprint, "" without a request idempotency key
-- ARGV[5]   field prefix for errors: "" (publish) or "messages" (publish_batch)
-- ARGV[6]   number of messages n
-- ARGV[7 + 5*(i-1) ...] per message i: payload (compact JSON), delay ms, priority 0..9, group id or "",
--           fingerprint ("" without a message idempotency key)
-- Returns: the message ids, in order (an id already published under a message's key is returned again).
-- Errors: QUEUE_NOT_FOUND; VALIDATION_ERROR (delay not below the retention period);
--         IDEMPOTENCY_KEY_REUSED.
--@include lifecycle
--@include idem

local qk = target_queue()
local now = to_int(ARGV[3], "now")
local request_fp = ARGV[4]
local prefix = ARGV[5]
local n = to_int(ARGV[6], "n", 0)

local cached = idem_lookup(KEYS[3], request_fp)
if cached then return cached end
local cfg = require_cfg(qk)

local function field(i, name)
  if prefix == "" then return name end
  return prefix .. "[" .. (i - 1) .. "]." .. name
end

-- Validate everything before the first write.
local ids = {}
local fresh = {}
local seen = {}
for i = 1, n do
  local base = 7 + 5 * (i - 1)
  local delay = to_int(ARGV[base + 1], "delay", 0)
  local priority = to_int(ARGV[base + 2], "priority", 0, 9)
  if delay >= cfg.retention_ms then
    fail("VALIDATION_ERROR", "delay_seconds must be shorter than the queue's retention period", field(i, "delay_seconds"))
  end
  local fp = ARGV[base + 4]
  local key = KEYS[3 + i]
  local earlier = nil
  if fp ~= "" then
    if seen[key] then
      if seen[key].fp ~= fp then
        fail("IDEMPOTENCY_KEY_REUSED", "idempotency key used twice with different messages", field(i, "idempotency_key"))
      end
      earlier = seen[key]
    else
      local prior = idem_lookup(key, fp, field(i, "idempotency_key"))
      if prior then ids[i] = prior[1] end
      seen[key] = {fp = fp, index = i}
    end
  end
  if earlier then
    fresh[i] = {dup_of = earlier.index}
  elseif not ids[i] then
    fresh[i] = {base = base, delay = delay, priority = priority, fp = fp, key = key}
  end
end

local ready = 0
for i = 1, n do
  local item = fresh[i]
  if item and item.base then
    local seq = redis.call("INCR", KEYS[2])
    local id = new_message_id(now, seq)
    local group = ARGV[item.base + 3]
    if group == "" then group = false end
    local m = {0, 0, item.priority, now, seq, group, false, false, false, now + item.delay, false, ARGV[item.base],
      cfg.retention_days}
    msg_put(qk, id, m)
    enqueue(qk, cfg, id, m, now, true)
    if item.delay == 0 then ready = ready + 1 end
    ids[i] = id
    idem_store(item.key, item.fp, {id})
  end
end
for i = 1, n do
  if fresh[i] and fresh[i].dup_of then ids[i] = ids[fresh[i].dup_of] end
end
if ready > 0 then notify(qk) end
idem_store(KEYS[3], request_fp, ids)
return ids
