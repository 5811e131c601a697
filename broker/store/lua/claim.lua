-- claim: lease up to `max` available messages of a queue (queue.consume), after acking, then nacking, the
-- leased messages the call carries (the `ack` and `nack` extensions of consume, docs/api.md "Acks and nacks
-- on consume"): each one that is leased under its receipt is acked (nacked), the others are reported and left
-- as they are; a FIFO group an ack frees, or a message a nack requeues at once, is leased by the same call.
-- Standard queues: highest priority first, then oldest. FIFO queues: for each ready group (oldest head
-- first), its consecutive due messages in order; the group is then busy until they are all settled.
-- Due delays, ended leases and retention are applied first, so a deadline holds with no worker running.
--
-- KEYS[1]  hash   cfg of the queue (its other keys are derived with queue_keys, same hash tag)
-- KEYS[2]  hash   the project's account (lua/include/account.lua), or the tag: not charged (a long poll's
--                 later attempts)
-- ARGV[1]  project tag (v1:{P})
-- ARGV[2]  queue name
-- ARGV[3]  now, ms
-- ARGV[4]  max messages, 1..100
-- ARGV[5]  visibility timeout, ms; "" = the queue's default
-- ARGV[6]  maintenance limit per structure
-- ARGV[7]  a random receipt key (at least 32 hex digits), kept as the queue's key if it has none yet (when
--          this call issues a receipt)
-- ARGV[8]  number A of the (id, receipt) pairs to ack that follow ("" or absent: none, a plain claim)
-- ARGV[9..8+2A] message id, receipt ("" = any current lease) pairs to ack first
-- ARGV[9+2A..] message id, receipt, requeue "1"|"0", delay ms: items to nack after the acks
-- Returns: {next_wake_ms, lease_deadline_ms, settled, [id, payload, priority, group|"", attempts, receipt, extra|""]...}
--   settled: {} without items, else {{acked id...}, {failed id, code, message, ...}, {nacked id, requeued 1|0, ...}}
--   (code MESSAGE_NOT_FOUND or LEASE_EXPIRED, as ack.lua and nack.lua would fail; the distinct ids of acks,
--   then of nacks, in order);
--   next_wake_ms: earliest time something may become available (-1 unknown), for long-poll waiters; -1 when
--   the call leased `max` messages (it is read only when fewer were leased);
--   lease_deadline_ms: the end of the leases taken. Each message's enqueued ms is in its id (the first 11
--   hex digits); its receipt is lease_receipt(rkey, id, lease); extra is F_EXTRA (lua/include/message.lua).
-- Errors: QUEUE_NOT_FOUND; the account's (UNAUTHORIZED, INSUFFICIENT_CREDIT).
--@include settle
--@include account

local qk = target_queue()
local now = to_int(ARGV[3], "now")
local max = to_int(ARGV[4], "max", 1)
local cfg = require_cfg(qk)
local visibility_ms = cfg.visibility_ms
if ARGV[5] ~= "" then visibility_ms = to_int(ARGV[5], "visibility", 0) end
if not cfg.rkey and #ARGV[7] < 32 then fail("INTERNAL", "argument receipt key is too short") end
local settling = (ARGV[8] or "") ~= ""
local ack_ids, ack_receipts, n_acks, nacks = {}, {}, 0, {}
if settling then
  local last = 8 + 2 * to_int(ARGV[8], "acks", 0)
  ack_ids, ack_receipts, n_acks = ack_items(ARGV, 9, last)
  nacks = nack_items(ARGV, last + 1)
end
-- The acks cost what they would as their own ack_batch call, each nack what a nack call costs; debited with
-- the consume (account_settle), the account read once.
local also = {}
if n_acks > 0 then also[1] = {"queue.ack_batch", 1} end
if #nacks > 0 then also[#also + 1] = {"queue.nack", #nacks} end
local acct, others = account_open_many(KEYS[2], ARGV[1], "queue.consume", 1, also)
maintain(qk, cfg, now, to_int(ARGV[6], "limit", 1))
local settled = {}
if settling then
  local acked, failed = ack_where_leased(qk, cfg.fifo, cfg.rkey, ack_ids, ack_receipts, n_acks, now)
  local nacked, nack_failed = nack_where_leased(qk, cfg, nacks, now)
  for _, v in ipairs(nack_failed) do failed[#failed + 1] = v end
  settled = {acked, failed, nacked}
end
-- The queue's receipt key, kept below once a receipt is issued: after the messages left avail, so that the
-- first write of a call is not a growing one (a store out of memory refuses those as a script's first write).
local rkey = cfg.rkey or ARGV[7]

local deadline = now + visibility_ms
local reply, nr = {-1, deadline, settled}, 3
local values, nv = {}, 0 -- HSET msgs: id, value ...
local held, nh = {}, 0   -- ZADD inflight: score, id ...

-- Lease message `id`, its stored value `raw` read as (offset, s) by cmsgpack.unpack_one: one more
-- delivery, in flight until the deadline (capped at its retention deadline, as hold does).
local function deliver(id, raw, offset, s)
  local payload = ""
  if offset >= 0 then payload = string.sub(raw, offset + 1) end
  local state, attempts, lease = delivered_state(s)
  local enqueued = enqueued_of(id)
  values[nv + 1] = id
  values[nv + 2] = state .. payload
  nv = nv + 2
  held[nh + 1] = string.format("%d", math.min(deadline, enqueued + s[1] * DAY_MS))
  held[nh + 2] = id
  nh = nh + 2
  reply[nr + 1] = id
  reply[nr + 2] = payload
  reply[nr + 3] = s[2]
  reply[nr + 4] = s[4] or ""
  reply[nr + 5] = attempts
  reply[nr + 6] = lease_receipt(rkey, id, lease)
  reply[nr + 7] = s[12] or ""
  nr = nr + 7
end

local max_s = string.format("%d", max)
if not cfg.fifo then
  -- The first `max` in avail order: its own region, merged with the region kept apart (rarely used).
  local ids
  local apart = {}
  if redis.call("EXISTS", qk.expiry) == 1 then -- "expiry" indexes exactly the ones kept apart
    apart = redis.call("ZRANGEBYSCORE", qk.avail, "-inf", "(0", "WITHSCORES", "LIMIT", "0", max_s)
  end
  if #apart == 0 then
    -- ZRANGE by rank, then remove that range: ZPOPMIN would also format every score.
    ids = redis.call("ZRANGE", qk.avail, "0", string.format("%d", max - 1))
    if #ids > 0 then redis.call("ZREMRANGEBYRANK", qk.avail, "0", string.format("%d", #ids - 1)) end
  else
    ids = {}
    local front = redis.call("ZRANGEBYSCORE", qk.avail, "0", "+inf", "WITHSCORES", "LIMIT", "0", max_s)
    local a, f, kept_apart = 1, 1, {}
    while #ids < max and (a < #apart or f < #front) do
      if a < #apart and (f > #front or tonumber(apart[a + 1]) + APART < tonumber(front[f + 1])) then
        ids[#ids + 1] = apart[a]
        kept_apart[#kept_apart + 1] = apart[a]
        a = a + 2
      else
        ids[#ids + 1] = front[f]
        f = f + 2
      end
    end
    redis.call("ZREM", qk.avail, unpack(ids))
    if #kept_apart > 0 then redis.call("ZREM", qk.expiry, unpack(kept_apart)) end
  end
  if #ids > 0 then
    local raws = read_many("HMGET", qk.msgs, ids, #ids)
    for i, id in ipairs(ids) do
      local raw = raws[i]
      if raw then
        local offset, s = cmsgpack.unpack_one(raw)
        deliver(id, raw, offset, s)
      end
    end
  end
else
  -- Each ready group's consecutive due messages; they leave the waiting structures all at once below.
  local taken = 0
  local leaving, nl = {}, 0   -- ids
  local members, nm = {}, 0   -- their gq members
  local groups = redis.call("ZRANGEBYSCORE", qk.groups, "-inf", string.format("%d", now), "LIMIT", "0", max_s)
  local refresh = {}          -- groups that took nothing (their entry in "groups" is refreshed)
  for _, group in ipairs(groups) do
    if taken >= max then break end
    local line = redis.call("ZRANGEBYLEX", qk.gq, "[" .. group .. "\0", "[" .. group .. "\0\255", "LIMIT", "0",
      string.format("%d", max - taken))
    local took = 0
    if #line > 0 then
      local ids = {}
      for j, member in ipairs(line) do ids[j] = fifo_member_id(member) end
      local raws = read_many("HMGET", qk.msgs, ids, #ids)
      for j, id in ipairs(ids) do
        local raw = raws[j]
        if not raw then fail("INTERNAL", "message '" .. id .. "' of a FIFO line is missing") end
        local offset, s = cmsgpack.unpack_one(raw)
        if enqueued_of(id) + (s[3] or 0) > now then break end -- not due yet
        nl = nl + 1
        leaving[nl] = id
        nm = nm + 1
        members[nm] = line[j]
        deliver(id, raw, offset, s)
        took = took + 1
      end
    end
    if took > 0 then
      redis.call("HINCRBY", qk.gbusy, group, string.format("%d", took))
      redis.call("ZREM", qk.groups, group) -- busy now (fifo_refresh)
      taken = taken + took
    else
      refresh[#refresh + 1] = group
    end
  end
  if nl > 0 then -- leave_waiting for all of them
    call_many("ZREM", qk.avail, leaving, nl)
    call_many("ZREM", qk.delayed, leaving, nl)
    call_many("ZREM", qk.expiry, leaving, nl)
    call_many("ZREM", qk.gq, members, nm)
  end
  for _, group in ipairs(refresh) do fifo_refresh(qk, group) end
end
if nv > 0 and not cfg.rkey then redis.call("HSET", qk.cfg, "rkey", rkey) end
-- The band gate maintenance found, once this call has written (as the receipt key, above).
if nv > 0 or (settling and (#settled[1] > 0 or #settled[3] > 0)) then band_gate_flush(qk) end
if nv > 0 then
  call_many("HSET", qk.msgs, values, nv)
  call_many("ZADD", qk.inflight, held, nh)
  tally(qk, "delivered", nv / 2)
end
flush_tallies()
account_settle(acct, now, others)
account_meter(acct, now, "delivered", nv / 2)

-- When to look again: the next delayed message or the next lease deadline. Only a call that leased fewer than
-- `max` has a caller that waits (a long poll, push delivery); a full one answers -1 and saves the two reads.
local wake = -1
if nv / 2 < max then
  local nd = redis.call("ZRANGE", qk.delayed, "0", "0", "WITHSCORES")
  if #nd > 0 then wake = tonumber(nd[2]) end
  local ni = redis.call("ZRANGE", qk.inflight, "0", "0", "WITHSCORES")
  if #ni > 0 and (wake < 0 or tonumber(ni[2]) < wake) then wake = tonumber(ni[2]) end
end
reply[1] = wake
return reply
