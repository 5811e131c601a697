-- ack: delete in-flight messages (queue.ack, and the many-ids extension).
-- All ids are checked before any is deleted: one unknown or unleased id fails the call.
--
-- KEYS[1]  hash    cfg of the queue (its other keys are derived with queue_keys, same hash tag)
-- KEYS[2]  string  idempotency record (the tag when there is no key)
-- KEYS[3]  hash    the project's account (lua/include/account.lua)
-- ARGV[1]  project tag (v1:{P})
-- ARGV[2]  queue name
-- ARGV[3]  now, ms
-- ARGV[4]  fingerprint, "" without an idempotency key
-- ARGV[5]  field name for errors about ids ("message_id" or "message_ids")
-- ARGV[6..] message id, receipt ("" = any current lease) pairs
-- Returns: the acked ids.
-- Errors: QUEUE_NOT_FOUND, MESSAGE_NOT_FOUND, LEASE_EXPIRED, IDEMPOTENCY_KEY_REUSED; the account's (UNAUTHORIZED, INSUFFICIENT_CREDIT).
--@include lifecycle
--@include idem
--@include lease
--@include account

local qk = target_queue()
local now = to_int(ARGV[3], "now")
local cached = idem_lookup(KEYS[2], ARGV[4])
if cached then return cached end
local fifo, rkey = require_ack_cfg(qk)
local acct = account_open(KEYS[3], ARGV[1], ARGV[5] == "message_id" and "queue.ack" or "queue.ack_batch", 1)

-- The distinct ids, in order, each with the receipt given with its first mention.
local ids, receipts, seen, n = {}, {}, {}, 0
for i = 6, #ARGV, 2 do
  local id = ARGV[i]
  if not seen[id] then
    seen[id] = true
    n = n + 1
    ids[n] = id
    receipts[n] = ARGV[i + 1]
  end
end
if n == 0 then
  account_settle(acct, now)
  idem_store(KEYS[2], ARGV[4], ids)
  return ids
end

-- Check them all (in order: the first failing id names the error), then delete them.
local raws = read_many("HMGET", qk.msgs, ids, n)
local leases = read_many("ZMSCORE", qk.inflight, ids, n)
local states = {}
for i = 1, n do
  states[i] = check_lease(ids[i], raws[i], leases[i], receipts[i], now, ARGV[5], rkey)
end
call_many("ZREM", qk.inflight, ids, n)
call_many("HDEL", qk.msgs, ids, n)
local acked_in_group = nil -- FIFO: group -> messages of it acked here
for i = 1, n do
  local s = states[i]
  if s[8] then unindex_foreign(qk, ids[i], s[8]) end
  if fifo then
    local group = s[4] or ""
    if not acked_in_group then acked_in_group = {} end
    if not acked_in_group[group] then
      acked_in_group[group] = 0
      acked_in_group[#acked_in_group + 1] = group
    end
    acked_in_group[group] = acked_in_group[group] + 1
  end
end
if acked_in_group then
  -- Every acked message was in flight, counted in gbusy (leave_inflight, for all of a group at once).
  for _, group in ipairs(acked_in_group) do
    if redis.call("HINCRBY", qk.gbusy, group, string.format("%d", -acked_in_group[group])) <= 0 then
      redis.call("HDEL", qk.gbusy, group)
    end
    fifo_refresh(qk, group)
  end
  notify(qk)
end
tally(qk, "acked", n)
flush_tallies()
account_settle(acct, now)
idem_store(KEYS[2], ARGV[4], ids)
return ids
