-- nack: end a lease as a failed delivery (queue.nack): requeue after a delay, or dead-letter at once.
-- With requeue, a message that has used its 1 + max_retries deliveries is dead-lettered (max_retries).
--
-- KEYS[1]  hash    cfg of the queue (its other keys are derived with queue_keys, same hash tag)
-- KEYS[2]  string  idempotency record (the tag when there is no key)
-- KEYS[3]  hash    the project's account (lua/include/account.lua), or the tag: not charged (push delivery)
-- ARGV[1]  project tag (v1:{P})
-- ARGV[2]  queue name
-- ARGV[3]  now, ms
-- ARGV[4]  fingerprint, "" without an idempotency key
-- ARGV[5]  message id
-- ARGV[6]  receipt, "" = any current lease
-- ARGV[7]  requeue: "1" or "0"
-- ARGV[8]  delay before it is available again, ms
-- ARGV[9]  reason when dead-lettered without requeue ("nack", or "push_failed" from push delivery)
-- ARGV[10] error text kept on the dead letter ("" none)
-- Returns: {message_id, requeued 0|1}
-- Errors: QUEUE_NOT_FOUND, MESSAGE_NOT_FOUND, LEASE_EXPIRED, IDEMPOTENCY_KEY_REUSED; the account's (UNAUTHORIZED, INSUFFICIENT_CREDIT).
--@include lifecycle
--@include idem
--@include lease
--@include account

local qk = target_queue()
local now = to_int(ARGV[3], "now")
local cached = idem_lookup(KEYS[2], ARGV[4])
if cached then return cached end
local cfg = require_cfg(qk)
local acct = account_open(KEYS[3], ARGV[1], "queue.nack", 1)
local id = ARGV[5]
local delay = to_int(ARGV[8], "delay", 0)
local m = leased_message(qk, cfg, id, ARGV[6], now, "message_id")
if ARGV[10] ~= "" then m[F_ERROR] = ARGV[10] end

leave_inflight(qk, cfg, id, m)
local requeued = fail_delivery(qk, cfg, id, m, now, now + delay, ARGV[7] == "1", ARGV[9])
tally(qk, "nacked", 1)
flush_tallies()
account_settle(acct, now)
local reply = {id, requeued and 1 or 0}
idem_store(KEYS[2], ARGV[4], reply)
return reply
