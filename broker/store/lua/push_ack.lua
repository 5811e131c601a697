-- push_ack: settle a successful push attempt (a 2xx answer) in one step: the attempt is recorded in the
-- subscription's delivery state and its log of recent attempts, and the message is deleted if the push lease is still held. When the
-- lease ended meanwhile (the message is available again or leased elsewhere), only the attempt is recorded.
--
-- KEYS[1]  hash    cfg of the queue (its other keys are derived with queue_keys, same hash tag)
-- ARGV[1]  project tag (v1:{P})
-- ARGV[2]  queue name
-- ARGV[3]  now, ms
-- ARGV[4]  message id
-- ARGV[5]  receipt of the push lease
-- ARGV[6]  HTTP status of the answer
-- ARGV[7]  generation of the subscription that made the attempt
-- ARGV[8]  the message's delivery attempt this was (1 for the first)
-- ARGV[9]  duration of the attempt, ms
-- Returns: {acked, recorded}: 1 when the message was deleted / the attempt recorded (the subscription is
--   still the one that made it), else 0.
-- Errors: QUEUE_NOT_FOUND.
--@include lifecycle
--@include lease
--@include push
--@include account

local qk = target_queue()
local now = to_int(ARGV[3], "now")
local status = to_int(ARGV[6], "status")
local generation = to_int(ARGV[7], "generation")
local attempt = to_int(ARGV[8], "attempt", 0)
local duration = to_int(ARGV[9], "duration", 0)
local cfg = require_cfg(qk)
local id = ARGV[4]

local raw = redis.call("HGET", qk.msgs, id)
local held = pcall(check_lease, id, raw, raw and redis.call("ZSCORE", qk.inflight, id), ARGV[5], now,
  "message_id", cfg.rkey)
local acked = 0
if held then
  local m = msg_decode(id, raw)
  leave_inflight(qk, cfg, id, m)
  unindex_foreign(qk, id, m[F_SOURCE])
  redis.call("HDEL", qk.msgs, id)
  if cfg.fifo then
    fifo_refresh(qk, group_of(m))
    notify(qk)
  end
  acked = 1
  tally(qk, "acked", 1)
end
tally(qk, "push_success", 1)
flush_tallies()
account_meter(account_open(ARGV[1], ARGV[1], "queue.push", 0), now, "pushed", acked) -- metered, not charged
local recorded = record_attempt(qk, load_sub(qk), generation, now, status, "", true, false,
  {id, attempt, "success", duration}) and 1 or 0
return {acked, recorded}
