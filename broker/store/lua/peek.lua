-- peek: one page of a queue's messages in one state, read-only (queue.peek): nothing is leased, moved,
-- counted or maintained, so a message shows where it sits now (a delay that fell due but was not yet
-- promoted still shows as delayed). Order: the structure's own (available: by score, the ones kept apart
-- first; delayed: due time; in flight: lease deadline). The cursor is the (score, id) of the last item of
-- the previous page.
--
-- KEYS[1]  hash    cfg of the queue (its other keys are derived with queue_keys, same hash tag)
-- ARGV[1]  project tag (v1:{P})
-- ARGV[2]  queue name
-- ARGV[3]  part: "avail", "delayed" or "inflight"
-- ARGV[4]  cursor score, "" for the first page
-- ARGV[5]  cursor id
-- ARGV[6]  page size
-- Returns: {more 0|1, last_score, last_id,
--           [id, payload, priority, group|"", attempts, deliveries, enqueued_ms, due_ms, score]...}
-- Errors: QUEUE_NOT_FOUND.
--@include queue
--@include message

local qk = target_queue()
require_cfg(qk)
local part = ARGV[3]
if part ~= "avail" and part ~= "delayed" and part ~= "inflight" then fail("INTERNAL", "unknown part " .. part) end
local limit = to_int(ARGV[6], "limit", 1)
local after_score, after_id = nil, ARGV[5]
if ARGV[4] ~= "" then after_score = to_int(ARGV[4], "cursor score") end

local reply = {0, "", ""}
local count = 0
local from = "-inf"
if after_score then from = ARGV[4] end
local offset = 0
while true do
  local page = redis.call("ZRANGEBYSCORE", qk[part], from, "+inf", "WITHSCORES", "LIMIT", offset, 200)
  if #page == 0 then break end
  offset = offset + #page / 2
  for i = 1, #page, 2 do
    local id, score = page[i], page[i + 1]
    if not after_score or tonumber(score) > after_score or id > after_id then
      local m = msg_get(qk, id)
      if m then
        if count == limit then
          reply[1] = 1
          return reply
        end
        count = count + 1
        reply[2], reply[3] = score, id
        local n = #reply
        reply[n + 1] = id
        reply[n + 2] = m[F_PAYLOAD]
        reply[n + 3] = m[F_PRIORITY]
        reply[n + 4] = group_of(m)
        reply[n + 5] = m[F_ATTEMPTS]
        reply[n + 6] = m[F_LEASE]
        reply[n + 7] = m[F_ENQUEUED]
        reply[n + 8] = m[F_DUE]
        reply[n + 9] = score
      end
    end
  end
end
return reply
