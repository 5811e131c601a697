-- dlq_list: one page of a queue's dead letters, wherever they sit, oldest first (queue.dlq.list).
-- The cursor is the (dead-lettered ms, member) of the last item of the previous page.
--
-- KEYS[1]  hash    cfg of the queue (its other keys are derived with queue_keys, same hash tag)
-- KEYS[2]  hash    the project's account (lua/include/account.lua)
-- ARGV[1]  project tag (v1:{P})
-- ARGV[2]  queue name
-- ARGV[3]  now, ms
-- ARGV[4]  cursor score (ms), "" for the first page
-- ARGV[5]  cursor member
-- ARGV[6]  page size
-- Returns: {more 0|1, last_score, last_member,
--           [id, payload, priority, group|"", deliveries, enqueued_ms, dead_ms, reason, source, error|""]...}
-- Errors: QUEUE_NOT_FOUND; the account's (UNAUTHORIZED, INSUFFICIENT_CREDIT).
--@include lifecycle
--@include account

local qk = target_queue()
local now = to_int(ARGV[3], "now")
local cfg = require_cfg(qk)
local acct = account_open(KEYS[2], ARGV[1], "queue.dlq.list", 1)
local limit = to_int(ARGV[6], "limit", 1)
maintain_with_dlq(qk, cfg, now, 1000)
flush_tallies()
local after_score, after_member = tonumber(ARGV[4]), ARGV[5]

local reply = {0, "", ""}
local count = 0
local from = "-inf"
if after_score then from = after_score end
local offset = 0
while true do
  local page = redis.call("ZRANGEBYSCORE", qk.dlqidx, from, "+inf", "WITHSCORES", "LIMIT", offset, 200)
  if #page == 0 then break end
  offset = offset + #page / 2
  for i = 1, #page, 2 do
    local member, score = page[i], tonumber(page[i + 1])
    if not after_score or score > after_score or member > after_member then
      if count == limit then
        reply[1] = 1
        account_settle(acct, now)
        return reply
      end
      local where, id = string.match(member, "^(.-)%z(.*)$")
      local m = msg_get(queue_keys(qk.tag, where), id)
      if m then
        count = count + 1
        reply[2], reply[3] = score, member
        local n = #reply
        reply[n + 1] = id
        reply[n + 2] = m[F_PAYLOAD]
        reply[n + 3] = m[F_PRIORITY]
        reply[n + 4] = group_of(m)
        reply[n + 5] = m[F_LEASE] or 0 -- deliveries ever: the failed deliveries that led here stay visible
        reply[n + 6] = m[F_ENQUEUED]
        reply[n + 7] = m[F_DEAD]
        reply[n + 8] = m[F_REASON]
        reply[n + 9] = m[F_SOURCE]
        reply[n + 10] = m[F_ERROR] or ""
      end
    end
  end
end
account_settle(acct, now)
return reply
