-- list_subscriptions: the push subscriptions of a project, for the delivery loop. Names left in the
-- index by a deleted queue (delete_queue removes the subscription but not the index entry) are pruned.
--
-- KEYS[1]  set     the project's subscribed queue names (see broker/store/subscriptions.py)
-- ARGV[1]  project tag (v1:{P})
-- Returns: {[queue, generation, url, secret, visibility_s, max_concurrency, disabled 0|1, fifo 0|1]...}
-- Errors: none.
--@include push

local tag = ARGV[1]
local reply = {}
for _, name in ipairs(redis.call("SMEMBERS", KEYS[1])) do
  local qk = queue_keys(tag, name)
  local v = redis.call("HMGET", qk.sub, "generation", "url", "secret", "visibility", "max_concurrency")
  local qtype = redis.call("HGET", qk.cfg, "type")
  if v[1] and qtype then
    local n = #reply
    reply[n + 1] = name
    reply[n + 2] = tonumber(v[1])
    reply[n + 3] = v[2]
    reply[n + 4] = v[3] or ""
    reply[n + 5] = tonumber(v[4])
    reply[n + 6] = tonumber(v[5])
    reply[n + 7] = (redis.call("HGET", qk.subst, "disabled") == "1") and 1 or 0
    reply[n + 8] = (qtype == "fifo") and 1 or 0
  else
    redis.call("SREM", KEYS[1], name)
  end
end
return reply
