-- peek_message: one message of a queue wherever it is, read-only (queue.message): waiting, in flight, a
-- dead letter in the queue's own area or one waiting in its named dead-letter queue. Nothing is changed.
--
-- KEYS[1]  hash    cfg of the queue (its other keys are derived with queue_keys, same hash tag)
-- ARGV[1]  project tag (v1:{P})
-- ARGV[2]  queue name
-- ARGV[3]  message id
-- Returns: {state, where, id, payload, priority, group|"", attempts, deliveries, enqueued_ms, due_ms,
--           lease_deadline_ms|-1, dead_ms|-1, reason|"", source|"", error|""}; state is "available",
--           "delayed", "in_flight" or "dead_letter"; `where` the queue that holds it.
-- Errors: QUEUE_NOT_FOUND, MESSAGE_NOT_FOUND.
--@include queue
--@include message

local qk = target_queue()
local cfg = require_cfg(qk)
local id = ARGV[3]

local function state_in(wk)
  if redis.call("ZSCORE", wk.inflight, id) then return "in_flight" end
  if redis.call("ZSCORE", wk.delayed, id) then return "delayed" end
  if redis.call("ZSCORE", wk.dead, id) then return "dead_letter" end
  return "available"
end

local where, m, state = qk, msg_get(qk, id), nil
if m then
  state = state_in(qk)
elseif cfg.dlq ~= "" and redis.call("ZSCORE", qk.dlqidx, cfg.dlq .. "\0" .. id) then
  where = queue_keys(qk.tag, cfg.dlq)
  m = msg_get(where, id)
  if m then state = "dead_letter" end
end
if not m then fail("MESSAGE_NOT_FOUND", "message '" .. id .. "' is not in queue '" .. qk.name .. "'", "message_id") end
if m[F_DEAD] and m[F_SOURCE] == qk.name then state = "dead_letter" end
local lease = -1
local held = redis.call("ZSCORE", where.inflight, id)
if held then lease = tonumber(held) end
return {state, where.name, id, m[F_PAYLOAD], m[F_PRIORITY], group_of(m), m[F_ATTEMPTS], m[F_LEASE], m[F_ENQUEUED],
  m[F_DUE], lease, m[F_DEAD] or -1, m[F_REASON] or "", m[F_SOURCE] or "", m[F_ERROR] or ""}
