-- ack: delete in-flight messages (queue.ack, and the many-ids extension).
-- All ids are checked before any is deleted: one unknown or unleased id fails the call.
--
-- KEYS[1]  hash    cfg of the queue (its other keys are derived with queue_keys, same hash tag)
-- KEYS[2]  string  idempotency record (the tag when there is no key)
-- ARGV[1]  project tag (v1:{P})
-- ARGV[2]  queue name
-- ARGV[3]  now, ms
-- ARGV[4]  fingerprint, "" without an idempotency key
-- ARGV[5]  field name for errors about ids ("message_id" or "message_ids")
-- ARGV[6..] message id, receipt ("" = any current lease) pairs
-- Returns: the acked ids.
-- Errors: QUEUE_NOT_FOUND, MESSAGE_NOT_FOUND, LEASE_EXPIRED, IDEMPOTENCY_KEY_REUSED.
--@include lifecycle
--@include idem
--@include lease

local qk = target_queue()
local now = to_int(ARGV[3], "now")
local cached = idem_lookup(KEYS[2], ARGV[4])
if cached then return cached end
local cfg = require_cfg(qk)

local items = {}
local seen = {}
for i = 6, #ARGV, 2 do
  local id = ARGV[i]
  if not seen[id] then
    seen[id] = true
    items[#items + 1] = {id = id, m = leased_message(qk, id, ARGV[i + 1], now, ARGV[5])}
  end
end
local acked = {}
for _, item in ipairs(items) do
  leave_inflight(qk, cfg, item.id, item.m)
  unindex_foreign(qk, item.id, item.m)
  redis.call("HDEL", qk.msgs, item.id)
  if cfg.fifo then fifo_refresh(qk, group_of(item.m)) end
  acked[#acked + 1] = item.id
end
if cfg.fifo and #acked > 0 then notify(qk) end
idem_store(KEYS[2], ARGV[4], acked)
return acked
