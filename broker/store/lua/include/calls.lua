-- redis.call with many arguments. Two costs to keep in mind on the hot paths (publish, claim, ack):
--   * a Lua number given to redis.call is formatted by Redis with "%.17g", several times the cost of
--     string.format("%d", n) here: scores and counts go as strings, constants as string literals;
--   * a score read back (WITHSCORES, ZSCORE, ZMSCORE, ZPOPMIN) is formatted by Redis and parsed again by
--     tonumber: read scores only where they are needed.
-- unpack passes at most about 8000 values (Lua's C stack), so long lists go in slices.

-- redis.call(command, key, args[1..count]), for a list of values or of pairs (then `count` is even).
local function call_many(command, key, args, count)
  if count <= 4000 then return redis.call(command, key, unpack(args, 1, count)) end
  for first = 1, count, 4000 do
    redis.call(command, key, unpack(args, first, math.min(first + 3999, count)))
  end
end

-- redis.call(command, key, args[1..count]) for a command that answers one value per argument (HMGET,
-- ZMSCORE): the answers, in order (false for none).
local function read_many(command, key, args, count)
  if count <= 4000 then return redis.call(command, key, unpack(args, 1, count)) end
  local answers, n = {}, 0
  for first = 1, count, 4000 do
    local part = redis.call(command, key, unpack(args, first, math.min(first + 3999, count)))
    for j = 1, #part do answers[n + j] = part[j] end
    n = n + #part
  end
  return answers
end
