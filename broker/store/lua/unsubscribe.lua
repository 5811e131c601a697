-- unsubscribe: remove the push subscription of a queue (extension: DELETE /v1/queue/push_subscription).
-- Messages leased by a delivery in progress stay leased until it settles or the lease ends.
--
-- KEYS[1]  hash    cfg of the queue (its other keys are derived with queue_keys, same hash tag)
-- KEYS[2]  set     the project's subscribed queue names (see broker/store/subscriptions.py)
-- ARGV[1]  project tag (v1:{P})
-- ARGV[2]  queue name
-- Returns: the removed subscription's id.
-- Errors: QUEUE_NOT_FOUND, SUBSCRIPTION_NOT_FOUND.
--@include push

local qk = target_queue()
require_cfg(qk)
local sub = load_sub(qk)
if not sub then fail("SUBSCRIPTION_NOT_FOUND", "queue '" .. qk.name .. "' has no push subscription", "queue") end
if sub.dlq ~= "" then redis.call("SREM", queue_key(qk.tag, sub.dlq, "refs"), "sub:" .. qk.name) end
redis.call("DEL", qk.sub, qk.subst, qk.pushlog)
redis.call("SREM", KEYS[2], qk.name)
return sub.id
