-- purge: delete every available, delayed and in-flight message of a queue (queue.purge).
-- Dead letters in the queue's own area stay (they are listed and redriven with queue.dlq.*).
-- Ended leases and retention are applied first: a message whose last delivery just failed is a dead
-- letter, not purged; an expired one is gone already. Work is proportional to the queue's size.
--
-- KEYS[1]  hash    cfg of the queue (its other keys are derived with queue_keys, same hash tag)
-- KEYS[2]  string  idempotency record (the tag when there is no key)
-- KEYS[3]  hash    the project's account (lua/include/account.lua)
-- ARGV[1]  project tag (v1:{P})
-- ARGV[2]  queue name
-- ARGV[3]  now, ms
-- ARGV[4]  fingerprint, "" without an idempotency key
-- Returns: {purged}
-- Errors: QUEUE_NOT_FOUND, IDEMPOTENCY_KEY_REUSED; the account's (UNAUTHORIZED, INSUFFICIENT_CREDIT).
--@include lifecycle
--@include idem
--@include account

local qk = target_queue()
local now = to_int(ARGV[3], "now")
local cached = idem_lookup(KEYS[2], ARGV[4])
if cached then return cached end
local cfg = require_cfg(qk)
local acct = account_open(KEYS[3], ARGV[1], "queue.purge", 1)
maintain(qk, cfg, now, 1000)
local purged = 0
for _, id in ipairs(redis.call("SMEMBERS", qk.foreign)) do
  local m = msg_get(qk, id)
  if m then unindex_foreign(qk, id, m[F_SOURCE]) end
end
for _, part in ipairs({"avail", "delayed", "inflight"}) do
  while true do
    local ids = redis.call("ZRANGE", qk[part], 0, 999)
    if #ids == 0 then break end
    redis.call("ZREM", qk[part], unpack(ids))
    redis.call("HDEL", qk.msgs, unpack(ids))
    purged = purged + #ids
  end
end
-- "expiry" indexes available messages only (include/lifecycle.lua): all purged.
redis.call("UNLINK", qk.gq, qk.groups, qk.gbusy, qk.foreign, qk.expiry)
band_gate_empty(qk, cfg)
tally(qk, "purged", purged)
flush_tallies()
account_settle(acct, now)
local reply = {purged}
idem_store(KEYS[2], ARGV[4], reply)
return reply
