-- take_tokens: take up to `want` tokens from a project's request-rate bucket (a token bucket that refills at
-- `rate` tokens per second up to `burst`). API processes take tokens in chunks and spend them locally
-- (broker/store/ratelimit.py), so the bucket costs one round trip per chunk, not one per request.
--
-- KEYS[1]  hash    the project's rate limit (v1:{P}:ratelimit): rate (tokens per second, a decimal string),
--                  burst (bucket size), tokens (tokens left at ts_ms), ts_ms (time of the last refill, ms).
--                  No `rate` field: the project has no limit.
-- ARGV[1]  now, ms
-- ARGV[2]  tokens wanted, 1..1000000
-- Returns: {granted, rate, burst, wait_ms}: the tokens granted (0..want), the limit (rate as a string), and
--          when nothing was granted the time in ms until one token is available (else 0).
--          {-1, "", 0, 0} when the project has no limit (nothing is written then).
-- Errors: INTERNAL (malformed arguments, or a malformed limit in the hash).
--@include errors

local key = KEYS[1]
local now = to_int(ARGV[1], "now", 0)
local want = to_int(ARGV[2], "want", 1, 1000000)

local limit = redis.call("HMGET", key, "rate", "burst", "tokens", "ts_ms")
if not limit[1] then
  return {-1, "", 0, 0}
end
local rate = tonumber(limit[1])
local burst = tonumber(limit[2])
if rate == nil or rate ~= rate or rate <= 0 or rate > 1e9 or burst == nil or burst < 1 or burst > 1e9 then
  fail("INTERNAL", "malformed rate limit in " .. key)
end
burst = math.floor(burst)
local tokens = tonumber(limit[3]) or burst
local last = tonumber(limit[4]) or now
-- A caller whose clock is behind the last refill gets no refill (and does not move the refill time back).
local elapsed_ms = math.max(0, now - last)
tokens = math.min(burst, math.max(0, tokens) + elapsed_ms * rate / 1000)
local granted = math.min(want, math.floor(tokens))
tokens = tokens - granted
redis.call("HSET", key, "tokens", string.format("%.6f", tokens), "ts_ms", math.max(now, last))
local wait_ms = 0
if granted == 0 then
  wait_ms = math.ceil((1 - tokens) * 1000 / rate)
end
return {granted, limit[1], burst, wait_ms}
