-- subscribe: create or replace the push subscription of a queue (queue.push_subscribe).
-- One subscription per queue: replacing it keeps its subscription_id, raises its generation and clears
-- its delivery state and its log of attempts (so a subscription disabled by a 410 Gone is enabled again).
-- Its dead-letter queue is registered in that queue's refs as "sub:<queue>", so deleting that queue answers QUEUE_IN_USE.
--
-- KEYS[1]  hash    cfg of the queue (its other keys are derived with queue_keys, same hash tag)
-- KEYS[2]  string  idempotency record (the tag when there is no key)
-- KEYS[3]  set     the project's subscribed queue names (see broker/store/subscriptions.py)
-- KEYS[4]  hash    the project's account (lua/include/account.lua)
-- ARGV[1]  project tag (v1:{P})
-- ARGV[2]  queue name
-- ARGV[3]  now, ms
-- ARGV[4]  fingerprint, "" without an idempotency key
-- ARGV[5]  subscription id to use when the queue has no subscription yet
-- ARGV[6]  url (validated by the caller)
-- ARGV[7]  secret, "" = unsigned
-- ARGV[8]  max_retries, "" = the queue's
-- ARGV[9]  visibility timeout of one attempt, s
-- ARGV[10] dead-letter queue name, "" = the queue's own dead-letter handling
-- ARGV[11] max concurrent deliveries per worker process
-- Returns: {subscription_id, url}
-- Errors: QUEUE_NOT_FOUND (the queue, or the dead-letter queue), IDEMPOTENCY_KEY_REUSED; the account's
--         (UNAUTHORIZED, INSUFFICIENT_CREDIT).
--@include push
--@include idem
--@include account

local qk = target_queue()
local now = to_int(ARGV[3], "now")
local cached = idem_lookup(KEYS[2], ARGV[4])
if cached then return cached end
require_cfg(qk)
local acct = account_open(KEYS[4], ARGV[1], "queue.push_subscribe", 1)
local url, secret, dlq = ARGV[6], ARGV[7], ARGV[10]
if ARGV[8] ~= "" then to_int(ARGV[8], "max_retries", 0) end
local visibility = to_int(ARGV[9], "visibility", 1)
local concurrency = to_int(ARGV[11], "max_concurrency", 1)
if dlq ~= "" and redis.call("EXISTS", queue_key(qk.tag, dlq, "cfg")) == 0 then
  fail("QUEUE_NOT_FOUND", "dead-letter queue '" .. dlq .. "' does not exist", "dead_letter_queue")
end

local old = redis.call("HMGET", qk.sub, "id", "generation", "dead_letter_queue", "created_ms")
local member = "sub:" .. qk.name
if old[3] and old[3] ~= "" and old[3] ~= dlq then redis.call("SREM", queue_key(qk.tag, old[3], "refs"), member) end
if dlq ~= "" then redis.call("SADD", queue_key(qk.tag, dlq, "refs"), member) end
local id = old[1] or ARGV[5]
redis.call("DEL", qk.sub, qk.subst, qk.pushlog)
redis.call("HSET", qk.sub, "id", id, "generation", tonumber(old[2] or "0") + 1, "url", url, "secret", secret,
  "max_retries", ARGV[8], "visibility", visibility, "dead_letter_queue", dlq, "max_concurrency", concurrency,
  "created_ms", old[4] or now, "updated_ms", now)
redis.call("SADD", KEYS[3], qk.name)
account_settle(acct, now)
local reply = {id, url}
idem_store(KEYS[2], ARGV[4], reply)
return reply
