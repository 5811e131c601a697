-- Acks shared by ack.lua (the ack and ack_batch routes: all or nothing) and claim.lua (the acks a consume
-- carries: item by item, docs/api.md "Acks on consume").
--@include lifecycle
--@include lease

-- The distinct message ids of the (id, receipt) pairs argv[first], argv[first + 1], ..., in order, each
-- with the receipt given with its first mention ("" = any current lease): ids, receipts, n.
local function ack_items(argv, first)
  local ids, receipts, seen, n = {}, {}, {}, 0
  for i = first, #argv, 2 do
    local id = argv[i]
    if not seen[id] then
      seen[id] = true
      n = n + 1
      ids[n] = id
      receipts[n] = argv[i + 1]
    end
  end
  return ids, receipts, n
end

-- Delete the leased messages ids[1..n], their leases checked (states[i]: the stored array of ids[i]):
-- out of inflight and msgs and their dead-letter source's index; the FIFO groups they held are freed
-- (refreshed, and waiters notified). Counted as acked.
local function ack_leased(qk, fifo, ids, states, n)
  if n == 0 then return end
  call_many("ZREM", qk.inflight, ids, n)
  call_many("HDEL", qk.msgs, ids, n)
  local acked_in_group = nil -- FIFO: group -> messages of it acked here
  for i = 1, n do
    local s = states[i]
    if s[8] then unindex_foreign(qk, ids[i], s[8]) end
    if fifo then
      local group = s[4] or ""
      if not acked_in_group then acked_in_group = {} end
      if not acked_in_group[group] then
        acked_in_group[group] = 0
        acked_in_group[#acked_in_group + 1] = group
      end
      acked_in_group[group] = acked_in_group[group] + 1
    end
  end
  if acked_in_group then
    -- Every acked message was in flight, counted in gbusy (leave_inflight, for all of a group at once).
    for _, group in ipairs(acked_in_group) do
      if redis.call("HINCRBY", qk.gbusy, group, string.format("%d", -acked_in_group[group])) <= 0 then
        redis.call("HDEL", qk.gbusy, group)
      end
      fifo_refresh(qk, group)
    end
    notify(qk)
  end
  tally(qk, "acked", n)
end

-- Ack, one by one, those of ids[1..n] that are leased under receipts[i] (lease_problem), and leave the
-- others as they are. Returns the acked ids and the failures: a flat list of id, code, message.
local function ack_where_leased(qk, fifo, rkey, ids, receipts, n, now)
  local acked, states, na = {}, {}, 0
  local failed, nf = {}, 0
  if n == 0 then return acked, failed end
  local raws = read_many("HMGET", qk.msgs, ids, n)
  local leases = read_many("ZMSCORE", qk.inflight, ids, n)
  for i = 1, n do
    local s = lease_state(raws[i])
    local code, message = lease_problem(ids[i], s, leases[i], receipts[i], now, rkey)
    if code then
      failed[nf + 1] = ids[i]
      failed[nf + 2] = code
      failed[nf + 3] = message
      nf = nf + 3
    else
      na = na + 1
      acked[na] = ids[i]
      states[na] = s
    end
  end
  ack_leased(qk, fifo, acked, states, na)
  return acked, failed
end
