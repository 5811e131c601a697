-- delete_queue: delete a queue, its messages and its subscription (queue.delete); idempotent.
-- Refused while another queue or a push subscription names it as dead-letter queue.
--
-- KEYS[1]  hash    cfg of the queue (its other keys are derived with queue_keys, same hash tag)
-- KEYS[2]  zset    the project's queue names (v1:{P}:queues)
-- KEYS[3]  set     the project's subscribed queue names (v1:{P}:subs)
-- KEYS[4]  hash    the project's account (lua/include/account.lua)
-- ARGV[1]  project tag (v1:{P})
-- ARGV[2]  queue name
-- ARGV[3]  now, ms
-- Returns: 1 when deleted, 0 when there was no such queue (charged too: the answer is a success).
-- Errors: QUEUE_IN_USE; the account's (UNAUTHORIZED, INSUFFICIENT_CREDIT).
--@include lifecycle
--@include account

local qk = target_queue()
local now = to_int(ARGV[3], "now")
local acct = account_open(KEYS[4], ARGV[1], "queue.delete", 1)
local cfg = load_cfg(qk)
if not cfg then
  account_settle(acct, now)
  return 0
end
local users = redis.call("SMEMBERS", qk.refs)
if #users > 0 then
  table.sort(users)
  fail("QUEUE_IN_USE", "queue is the dead-letter queue of: " .. table.concat(users, ", "), "queue")
end
-- Dead letters of other queues held here stop being listed there.
for _, id in ipairs(redis.call("SMEMBERS", qk.foreign)) do
  local m = msg_get(qk, id)
  if m then unindex_foreign(qk, id, m[F_SOURCE]) end
end
if cfg.dlq ~= "" then redis.call("SREM", queue_key(qk.tag, cfg.dlq, "refs"), qk.name) end
local sub_dlq = redis.call("HGET", qk.sub, "dead_letter_queue")
if sub_dlq and sub_dlq ~= "" then redis.call("SREM", queue_key(qk.tag, sub_dlq, "refs"), "sub:" .. qk.name) end
for _, part in ipairs(QUEUE_PARTS) do redis.call("UNLINK", qk[part]) end
redis.call("ZREM", KEYS[2], qk.name)
redis.call("SREM", KEYS[3], qk.name)
account_settle(acct, now)
return 1
