--@include queue
-- Push subscriptions: the queue's "sub" hash holds the subscription, "subst" its delivery state.
--   sub:   id, generation, url, secret, max_retries ("" = the queue's), visibility (s), dead_letter_queue
--          ("" none), max_concurrency, created_ms, updated_ms
--   subst: last_attempt_ms, last_status (0 = no HTTP answer), last_error, consecutive_failures,
--          disabled ("1" after a 410 Gone), disabled_ms
--   pushlog: the latest PUSH_LOG_SIZE attempts (and up to PUSH_LOG_SLACK older ones), newest first, each cmsgpack
--          {at_ms, message_id, attempt, outcome, status (0 = no answer), error, duration_ms}, outcome
--          "success" | "failure" (retried) | "dead_lettered"; cleared with the delivery state
-- `generation` grows on every subscribe, so an attempt made under a replaced subscription does not
-- write the state (or disable) the new one.

-- The subscription of qk, or nil.
local function load_sub(qk)
  local v = redis.call("HMGET", qk.sub, "id", "generation", "max_retries", "dead_letter_queue")
  if not v[1] then return nil end
  return {id = v[1], generation = tonumber(v[2]), max_retries = tonumber(v[3] or ""), dlq = v[4] or ""}
end

local PUSH_LOG_SIZE = 50
local PUSH_LOG_SLACK = 10 -- the list holds at most PUSH_LOG_SIZE + PUSH_LOG_SLACK entries
local PUSH_LOG_ERROR = 300 -- bytes of an error text kept in the log

-- Record one attempt in the delivery state and its log, only when `sub` is the generation that made it.
-- status is the HTTP status (0 when there was no answer); err is "" on success; entry is
-- {message_id, attempt, outcome, duration_ms} for the log.
local function record_attempt(qk, sub, generation, now, status, err, ok, gone, entry)
  if not sub or sub.generation ~= generation then return false end
  local short = err
  if #short > PUSH_LOG_ERROR then -- cut on a character boundary (the text is UTF-8)
    short = string.gsub(string.sub(short, 1, PUSH_LOG_ERROR), "[\192-\255][\128-\191]*$", "")
  end
  -- One LPUSH per attempt; the list is cut back to PUSH_LOG_SIZE once it holds PUSH_LOG_SLACK more (one
  -- attempt in PUSH_LOG_SLACK pays the LTRIM); readers read the first PUSH_LOG_SIZE.
  local length = redis.call("LPUSH", qk.pushlog, cmsgpack.pack({now, entry[1], entry[2], entry[3], status, short,
    entry[4]}))
  if length > PUSH_LOG_SIZE + PUSH_LOG_SLACK then redis.call("LTRIM", qk.pushlog, 0, PUSH_LOG_SIZE - 1) end
  redis.call("HSET", qk.subst, "last_attempt_ms", now, "last_status", status, "last_error", err)
  if ok then
    redis.call("HSET", qk.subst, "consecutive_failures", 0)
  else
    redis.call("HINCRBY", qk.subst, "consecutive_failures", 1)
  end
  if gone then redis.call("HSET", qk.subst, "disabled", "1", "disabled_ms", now) end
  return true
end
