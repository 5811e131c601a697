-- list_queues: one page of a project's queues in name order (queue.list).
-- The cursor is the last name of the previous page, so the listing is stable while queues come and go.
--
-- KEYS[1]  zset    the project's queue names (v1:{P}:queues)
-- KEYS[2]  hash    the project's account (lua/include/account.lua)
-- ARGV[1]  project tag (v1:{P})
-- ARGV[2]  last name of the previous page, "" for the first page
-- ARGV[3]  page size
-- ARGV[4]  now, ms
-- Returns: {more 0|1, cfg_reply of each queue...} (each cfg_reply is a nested array)
-- Errors: the account's (UNAUTHORIZED, INSUFFICIENT_CREDIT).
--@include queue
--@include account

local limit = to_int(ARGV[3], "limit", 1)
local now = to_int(ARGV[4], "now")
local acct = account_open(KEYS[2], ARGV[1], "queue.list", 1)
local start = "-"
if ARGV[2] ~= "" then start = "(" .. ARGV[2] end
local names = redis.call("ZRANGEBYLEX", KEYS[1], start, "+", "LIMIT", 0, limit + 1)
local reply = {0}
for i, name in ipairs(names) do
  if i > limit then
    reply[1] = 1
    break
  end
  reply[#reply + 1] = cfg_reply(queue_keys(ARGV[1], name))
end
account_settle(acct, now)
return reply
