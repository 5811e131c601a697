-- set_rate_limit: set or remove a project's request-rate limit (`broker limits set|clear`).
-- Setting keeps the tokens the bucket holds now (capped at the new burst); a new limit starts full.
--
-- KEYS[1]  hash    the project's rate limit (v1:{P}:ratelimit), fields as in take_tokens.lua
-- ARGV[1]  now, ms
-- ARGV[2]  rate, tokens per second (a decimal, > 0 and <= 1e9), or "" to remove the limit
-- ARGV[3]  burst, 1..1000000000 (ignored when removing)
-- Returns: 1 when a limit was set or removed, 0 when there was no limit to remove.
-- Errors: INTERNAL (malformed arguments).
--@include errors

local key = KEYS[1]
local now = to_int(ARGV[1], "now", 0)
if ARGV[2] == "" then
  return redis.call("DEL", key)
end
local rate = tonumber(ARGV[2])
if rate == nil or rate ~= rate or rate <= 0 or rate > 1e9 then
  fail("INTERNAL", "argument rate is not a positive number: " .. tostring(ARGV[2]))
end
local burst = to_int(ARGV[3], "burst", 1, 1000000000)

local old = redis.call("HMGET", key, "rate", "tokens", "ts_ms")
local tokens = burst
local old_rate = tonumber(old[1])
if old_rate and old_rate > 0 and tonumber(old[2]) then
  local elapsed_ms = math.max(0, now - (tonumber(old[3]) or now))
  tokens = math.min(burst, tonumber(old[2]) + elapsed_ms * old_rate / 1000)
end
redis.call("HSET", key, "rate", ARGV[2], "burst", burst, "tokens", string.format("%.6f", tokens),
  "ts_ms", now)
return 1
