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
--@include settle
--@include idem
--@include account

local qk = target_queue()
local now = to_int(ARGV[3], "now")
local cached = idem_lookup(KEYS[2], ARGV[4])
if cached then return cached end
local fifo, rkey = require_ack_cfg(qk)
local acct = account_open(KEYS[3], ARGV[1], ARGV[5] == "message_id" and "queue.ack" or "queue.ack_batch", 1)

local ids, receipts, n = ack_items(ARGV, 6)
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
ack_leased(qk, fifo, ids, states, n)
flush_tallies()
account_settle(acct, now)
idem_store(KEYS[2], ARGV[4], ids)
return ids
