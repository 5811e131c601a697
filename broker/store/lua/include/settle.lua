-- Acks shared by ack.lua (the ack and ack_batch routes: all or nothing) and claim.lua (the acks a consume
-- carries: item by item, docs/api.md "Acks and nacks on consume"), and the nacks a consume carries.
--@include lifecycle
--@include lease

-- The distinct message ids of the (id, receipt) pairs argv[first], argv[first + 1], ... argv[last] (default
-- #argv), in order, each with the receipt given with its first mention ("" = any current lease): ids, receipts, n.
local function ack_items(argv, first, last)
  local ids, receipts, seen, n = {}, {}, {}, 0
  for i = first, last or #argv, 2 do
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

-- The nack items argv[first ..] of a consume (id, receipt, requeue "1"|"0", delay ms: the `nack` extension),
-- checked before anything is written: the distinct ids in order, each as its first mention has it.
local function nack_items(argv, first)
  local items, seen = {}, {}
  for i = first, #argv, 4 do
    local id = argv[i]
    if not seen[id] then
      seen[id] = true
      items[#items + 1] = {id, argv[i + 1], argv[i + 2] == "1", to_int(argv[i + 3], "delay", 0)}
    end
  end
  return items
end

-- Nack, one by one, those of `items` (nack_items) that are leased under their receipt, as nack.lua would:
-- the message leaves flight and is requeued after its delay, or dead-lettered (requeue false, or its
-- deliveries used up); the others are left as they are. Returns the nacked ids with their outcome (a flat
-- list of id, 1 requeued | 0 dead-lettered) and the failures (id, code, message, as ack_where_leased).
local function nack_where_leased(qk, cfg, items, now)
  local nacked, nn, failed, nf = {}, 0, {}, 0
  for _, item in ipairs(items) do
    local id = item[1]
    local raw = redis.call("HGET", qk.msgs, id)
    local score = raw and redis.call("ZSCORE", qk.inflight, id)
    local code, message = lease_problem(id, lease_state(raw), score, item[2], now, cfg.rkey)
    if code then
      failed[nf + 1] = id
      failed[nf + 2] = code
      failed[nf + 3] = message
      nf = nf + 3
    else
      local m = msg_decode(id, raw)
      leave_inflight(qk, cfg, id, m)
      local requeued = fail_delivery(qk, cfg, id, m, now, now + item[4], item[3], "nack")
      nacked[nn + 1] = id
      nacked[nn + 2] = requeued and 1 or 0
      nn = nn + 2
    end
  end
  if nn > 0 then tally(qk, "nacked", nn / 2) end
  return nacked, failed
end
