-- push_fail: end a failed push attempt (an answer other than 2xx, a timeout, a connection error or a
-- refused address) and record it in the subscription's delivery state and its log of recent attempts.
--   410 Gone: the subscription is disabled and the message is available again at once; the attempt
--             does not count against its retries.
--   otherwise: the message is available again after `delay`, unless it has had the subscription's
--             max_retries failed retries: then it is dead-lettered with reason "push_failed" to the
--             subscription's dead_letter_queue (else where the queue sends its dead letters).
-- The error text is kept on the message, and so on its dead letter.
--
-- KEYS[1]  hash    cfg of the queue (its other keys are derived with queue_keys, same hash tag)
-- ARGV[1]  project tag (v1:{P})
-- ARGV[2]  queue name
-- ARGV[3]  now, ms
-- ARGV[4]  message id
-- ARGV[5]  receipt of the push lease
-- ARGV[6]  delay before the retry, ms
-- ARGV[7]  HTTP status, 0 when there was no answer
-- ARGV[8]  error text
-- ARGV[9]  generation of the subscription that made the attempt
-- ARGV[10] gone: "1" for 410 Gone, else "0"
-- ARGV[11] duration of the attempt, ms
-- Returns: {message_id, outcome} with outcome "requeued" | "dead_lettered"
-- Errors: QUEUE_NOT_FOUND, MESSAGE_NOT_FOUND, LEASE_EXPIRED (the lease ended: the message is handled elsewhere).
--@include lifecycle
--@include lease
--@include push

local qk = target_queue()
local now = to_int(ARGV[3], "now")
local cfg = require_cfg(qk)
local id = ARGV[4]
local delay = to_int(ARGV[6], "delay", 0)
local status = to_int(ARGV[7], "status")
local generation = to_int(ARGV[9], "generation")
local gone = ARGV[10] == "1"
local duration = to_int(ARGV[11], "duration", 0)
local m = leased_message(qk, cfg, id, ARGV[5], now, "message_id")
local attempt = m[F_ATTEMPTS] -- this delivery's (dead-lettering and 410 Gone change it below)

-- The retry budget and dead-letter target of the subscription (the queue's once it is gone).
local sub = load_sub(qk)
local pcfg = {}
for k, v in pairs(cfg) do pcfg[k] = v end
if sub and sub.max_retries then pcfg.max_retries = sub.max_retries end
if sub and sub.dlq ~= "" then pcfg.dlq = sub.dlq end

m[F_ERROR] = ARGV[8]
leave_inflight(qk, cfg, id, m)
local requeued
if gone then
  if m[F_ATTEMPTS] > 0 then m[F_ATTEMPTS] = m[F_ATTEMPTS] - 1 end
  requeued = fail_delivery(qk, pcfg, id, m, now, now, true)
elseif m[F_ATTEMPTS] >= 1 + pcfg.max_retries then
  requeued = fail_delivery(qk, pcfg, id, m, now, now, false, "push_failed")
else
  requeued = fail_delivery(qk, pcfg, id, m, now, now + delay, true)
end
record_attempt(qk, sub, generation, now, status, ARGV[8], false, gone,
  {id, attempt, requeued and "failure" or "dead_lettered", duration})
tally(qk, requeued and "push_failure" or "push_dead_lettered", 1)
flush_tallies()
return {id, requeued and "requeued" or "dead_lettered"}
