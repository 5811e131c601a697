-- delete_queue: delete a queue, its messages and its subscription (queue.delete); idempotent.
-- Refused while another queue or a push subscription names it as dead-letter queue.
--
-- KEYS[1]  hash    cfg of the queue (its other keys are derived with queue_keys, same hash tag)
-- KEYS[2]  zset    the project's queue names (v1:{P}:queues)
-- KEYS[3]  set     the project's subscribed queue names (v1:{P}:subs)
-- ARGV[1]  project tag (v1:{P})
-- ARGV[2]  queue name
-- Returns: 1 when deleted, 0 when there was no such queue.
-- Errors: QUEUE_IN_USE.
--@include lifecycle

local qk = target_queue()
local cfg = load_cfg(qk)
if not cfg then return 0 end
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
return 1
