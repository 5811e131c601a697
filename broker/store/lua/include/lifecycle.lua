--@include queue
--@include message
--@include calls
-- State moves shared by the message scripts. Each keeps the invariant that a message id is in exactly
-- one of: avail/delayed (waiting; FIFO also in gq), inflight, dead (own dead-letter area), or gone.
--
-- Retention deletes a message at retention_deadline(m) wherever it is. The structures a message sits in
-- are ordered so that those past their deadline are found at their front, in O(log n), without an index
-- entry of their own:
--   delayed   scored by min(due time, retention deadline): maintenance deletes instead of promoting;
--   inflight  scored by min(lease deadline, retention deadline): maintenance deletes instead of
--             requeueing (a lease check reads the message's deadline first);
--   dead      scored by the retention deadline;
--   avail     each band (9 - priority; a FIFO queue has one) is in retention-deadline order as well as
--             in sequence order: a message joins its band only when its deadline lies between those of
--             its neighbours there, so the messages past retention are the front of each band. A message
--             whose deadline does not fit (the retention was changed with update_queue, or publishers'
--             clocks disagree) is scored APART lower instead, a region below 0 in the same order, and is
--             indexed in "expiry" by its deadline. "expiry" holds nothing else.
--
-- The band gate: the fronts of the bands are read only when one of them may be past its deadline. The
-- queue's cfg field band_expiry_ms is a time before which no message in a band reaches its retention
-- deadline (a lower bound of the deadlines at the bands' fronts, "inf" when no message can): a message
-- leaving a band cannot lower that bound, and every message that joins a band lowers the field to its
-- own deadline when that is earlier (band_gate_lower: make_available, publish). Maintenance reads the
-- fronts when now has reached the field, or when it is absent (a queue stored without it), and raises it
-- to the earliest deadline found there (band_gate_flush: written once the call has written something
-- else, so that it is never a call's first write; until then the field keeps its lower value). The
-- background maintenance (maintain.lua) reads the fronts every time and corrects a gate that is too late.

-- Counters of each queue for /metrics: published, delivered, acked, nacked, lease_expired, dead_lettered,
-- redriven, purged, and the push attempts by outcome: push_success, push_failure (to be retried),
-- push_dead_lettered. A script adds up what it moves with tally() and writes the sums at its end with
-- flush_tallies(): one HINCRBY per counter and queue that moved, whatever the number of messages. They live
-- with the queue (deleted with it) and are exact across every process and restart.
--
-- The four counters the per-minute history also counts (HISTORY_CODES) share its increment: a call adds
-- them to the history field of its minute only ("<minute>+p" in "hist"), and the first change of a later
-- minute folds that open minute into the totals ("ctr") at once (fold_minute). A total is then its "ctr"
-- field plus the open minute's field (read_counters); every other counter goes to "ctr" directly.
local tallies = {}
local tallied_queues = {} -- ctr key -> the queue's keys (flush_history writes its "hist")

local function tally(qk, field, n)
  if n == 0 then return end
  local counts = tallies[qk.ctr]
  if not counts then
    counts = {}
    tallies[qk.ctr] = counts
    tallies[#tallies + 1] = qk.ctr
    tallied_queues[qk.ctr] = qk
  end
  counts[field] = (counts[field] or 0) + n
end

-- The per-minute history of a queue (its "hist" hash, read by history.lua). The counts of a minute m:
-- "m:p", "m:a", "m:x", "m:s" published, acked and dead-lettered messages and push deliveries that succeeded
-- (counted in "ctr" too), "m+p", "m+a", "m+x", "m+s" the same while m is the open minute (not yet in
-- "ctr"; the reader adds both forms), "m:f" push deliveries that failed (retried or dead-lettered; the two
-- counters of those stay apart in "ctr"); "m:d" is the depth (available + delayed + in flight) as the
-- minute's first change left it, and "last" the newest minute written, the open one. One HINCRBY per count
-- and call; the first change of a minute (an increment that answers its own amount, or a purge or redrive)
-- also folds the minute that was open, samples the depth and deletes the minutes that fell out of the day
-- kept (HISTORY_MINUTES), so the hash stays bounded however long a queue was idle. Stored before the
-- counters shared the history's increment, a history has no "+" fields: all of it is in "ctr" already.
local HISTORY_MINUTES = 1440
local HISTORY_CODES = {"p", "a", "x", "s"}
local HISTORY_COUNTERS = {"published", "acked", "dead_lettered", "push_success"} -- in HISTORY_CODES' order
local HISTORY_CODE = {published = "p", acked = "a", dead_lettered = "x", push_success = "s"}

-- The counters' own writes: HINCRBY of the counters the history does not count (bench/observability.py
-- empties this function and fold_minute to measure what the counters cost, the history kept).
local function write_counters(key, counts)
  for field, n in pairs(counts) do
    if not HISTORY_CODE[field] then redis.call("HINCRBY", key, field, string.format("%d", n)) end
  end
end

-- Add the open counts of minute `m` (its "+" fields) to "ctr" and delete them; they stay in the history as
-- "m:" fields when `keep`.
local function fold_minute(qk, m, keep)
  local open = redis.call("HMGET", qk.hist, m .. "+p", m .. "+a", m .. "+x", m .. "+s")
  local gone, n = {}, 0
  for i, code in ipairs(HISTORY_CODES) do
    local count = open[i]
    if count then
      redis.call("HINCRBY", qk.ctr, HISTORY_COUNTERS[i], count)
      if keep then redis.call("HINCRBY", qk.hist, m .. ":" .. code, count) end
      n = n + 1
      gone[n] = m .. "+" .. code
    end
  end
  if n > 0 then call_many("HDEL", qk.hist, gone, n) end
end

-- HINCRBY of one history field; true when it was the field's first increment (of its minute).
local function history_add(key, field, n)
  return redis.call("HINCRBY", key, field, string.format("%d", n)) == n
end

local function flush_history(qk, counts, now)
  local minute = math.floor(now / 60000)
  local m = string.format("%d", minute)
  local first = (counts.purged or counts.redriven) ~= nil
  for i, code in ipairs(HISTORY_CODES) do
    local n = counts[HISTORY_COUNTERS[i]]
    if n then first = history_add(qk.hist, m .. "+" .. code, n) or first end
  end
  local failed = (counts.push_failure or 0) + (counts.push_dead_lettered or 0) -- a last failed attempt too
  if failed > 0 then first = history_add(qk.hist, m .. ":f", failed) or first end
  if not first then return end
  local last = tonumber(redis.call("HGET", qk.hist, "last") or "")
  if last and last >= minute then
    -- A minute before the open one (a caller whose clock is behind another's): its counts are folded at
    -- once, in the history while it is within the day kept.
    if last > minute then fold_minute(qk, m, minute > last - HISTORY_MINUTES) end
    return
  end
  if last then -- the minutes last - 1439 .. minute - 1440 are out of the day now (none before last - 1439 is left)
    fold_minute(qk, string.format("%d", last), last > minute - HISTORY_MINUTES)
    local stale, n = {}, 0
    for old = last - HISTORY_MINUTES + 1, math.min(minute - HISTORY_MINUTES, last) do
      local o = string.format("%d", old)
      stale[n + 1], stale[n + 2], stale[n + 3], stale[n + 4] = o .. ":p", o .. ":a", o .. ":x", o .. ":d"
      stale[n + 5], stale[n + 6] = o .. ":s", o .. ":f"
      n = n + 6
    end
    if n > 0 then call_many("HDEL", qk.hist, stale, n) end
  end
  local depth = redis.call("ZCARD", qk.avail) + redis.call("ZCARD", qk.delayed) + redis.call("ZCARD", qk.inflight)
  redis.call("HSET", qk.hist, m .. ":d", string.format("%d", depth), "last", m)
end

-- Every script that tallies is a target_queue script with `now` in ARGV[3] (tests/lua/test_lua_history.py
-- checks their headers), so flush_tallies reads it there rather than changing every caller.
local function flush_tallies()
  for _, key in ipairs(tallies) do
    local counts = tallies[key]
    write_counters(key, counts)
    if counts.published or counts.acked or counts.dead_lettered or counts.purged or counts.redriven
        or counts.push_success or counts.push_failure or counts.push_dead_lettered then
      flush_history(tallied_queues[key], counts, tonumber(ARGV[3]))
    end
  end
end

-- The counters `names` of qk as /metrics reports them (strings, "0" for none): "ctr" plus the open minute.
local function read_counters(qk, names)
  local values = redis.call("HMGET", qk.ctr, unpack(names))
  local last = redis.call("HGET", qk.hist, "last")
  local open = {}
  if last then
    local v = redis.call("HMGET", qk.hist, last .. "+p", last .. "+a", last .. "+x", last .. "+s")
    for i, field in ipairs(HISTORY_COUNTERS) do open[field] = v[i] end
  end
  for i, name in ipairs(names) do
    local count = values[i] or "0"
    if open[name] then count = string.format("%d", tonumber(count) + tonumber(open[name])) end
    values[i] = count
  end
  return values
end

local function notify(qk)
  redis.call("PUBLISH", notify_channel(qk.tag), qk.name)
end

-- FIFO: a group is ready (in "groups", scored by its head's due time) when nothing of it is in flight
-- and it has a waiting message.
local function fifo_refresh(qk, group)
  local busy = tonumber(redis.call("HGET", qk.gbusy, group) or "0")
  if busy > 0 then
    redis.call("ZREM", qk.groups, group)
    return
  end
  local head = redis.call("ZRANGEBYLEX", qk.gq, "[" .. group .. "\0", "[" .. group .. "\0\255", "LIMIT", "0", "1")
  if #head == 0 then
    redis.call("ZREM", qk.groups, group)
    return
  end
  redis.call("ZADD", qk.groups, string.format("%d", stored_due(qk, fifo_member_id(head[1]))), group)
end

-- fifo_refresh of the groups a publish added messages to (`groups`, a list), at once: their line is not
-- empty; first_member[group] is the line member of the first message added to it, first_due[group] its
-- due time (a head that is one of them is not read again).
local function fifo_refresh_published(qk, groups, first_member, first_due)
  local busy = read_many("HMGET", qk.gbusy, groups, #groups)
  local ready, nr = {}, 0 -- ZADD groups: due, group ...
  local held, nh = {}, 0  -- ZREM groups: group ...
  for i, group in ipairs(groups) do
    local head = nil
    if not (busy[i] and tonumber(busy[i]) > 0) then
      head = redis.call("ZRANGEBYLEX", qk.gq, "[" .. group .. "\0", "[" .. group .. "\0\255", "LIMIT", "0", "1")[1]
    end
    if head then
      local due = first_due[group]
      if head ~= first_member[group] then due = stored_due(qk, fifo_member_id(head)) end
      ready[nr + 1] = string.format("%d", due)
      ready[nr + 2] = group
      nr = nr + 2
    else
      nh = nh + 1
      held[nh] = group
    end
  end
  if nh > 0 then call_many("ZREM", qk.groups, held, nh) end
  if nr > 0 then call_many("ZADD", qk.groups, ready, nr) end
end

-- Retention deadlines of messages this script call has read or placed, per msgs key.
local known_deadlines = {}

-- The band gate of each queue this call touched (see the header), per cfg key: {stored = the value of
-- band_expiry_ms as this call left it (nil: absent), raised = the value a complete read of the fronts
-- found, not written yet (nil: none)}. Every change of the gate goes through here, whichever table of
-- the queue's configuration the caller holds.
local band_gates = {}

local function band_gate(qk, cfg)
  local gate = band_gates[qk.cfg]
  if not gate then
    gate = {stored = cfg.band_expiry}
    band_gates[qk.cfg] = gate
  end
  return gate
end

local function band_gate_write(qk, value)
  local v = "inf"
  if value < math.huge then v = string.format("%d", value) end
  redis.call("HSET", qk.cfg, "band_expiry_ms", v)
end

-- A message whose retention deadline is `deadline` joined a band of qk's avail. Called after the call's
-- first write (the message's own).
local function band_gate_lower(qk, cfg, deadline)
  local gate = band_gate(qk, cfg)
  if gate.raised and deadline < gate.raised then gate.raised = deadline end
  if gate.stored and deadline < gate.stored then
    band_gate_write(qk, deadline)
    gate.stored = deadline
  end
end

-- Write the gate maintenance found for qk, if any; only once the call has written something else.
local function band_gate_flush(qk)
  local gate = band_gates[qk.cfg]
  if gate and gate.raised then
    if gate.raised ~= gate.stored then band_gate_write(qk, gate.raised) end
    gate.stored = gate.raised
    gate.raised = nil
  end
end

-- qk's avail is empty now (purge): no message in a band. Called after the call's first write.
local function band_gate_empty(qk, cfg)
  band_gate(qk, cfg).raised = math.huge
  band_gate_flush(qk)
end

-- Add a due message (stored in msgs) to avail: in its band when its retention deadline keeps the band in
-- deadline order, else apart (see the header). A neighbour's deadline lies between its enqueued time plus
-- the lowest and the highest retention the queue ever had (cfg.min_days, cfg.max_days): it is read only
-- when those bounds do not settle the question. (A publish places its messages with band_takes_newest.)
local function make_available(qk, cfg, id, m)
  local score = avail_score(cfg, m)
  local deadline = retention_deadline(m)
  local low = math.floor(score / PRIORITY_STEP) * PRIORITY_STEP
  local known = known_deadlines[qk.msgs]
  if not known then
    known = {}
    known_deadlines[qk.msgs] = known
  end
  local fits = true
  local before = redis.call("ZREVRANGEBYSCORE", qk.avail, "(" .. score, low, "LIMIT", "0", "1")
  local other = before[1]
  if other and enqueued_of(other) + cfg.max_days * DAY_MS > deadline then
    local d = known[other] or stored_deadline(qk, other)
    fits = not d or d <= deadline
  end
  if fits then
    local after = redis.call("ZRANGEBYSCORE", qk.avail, "(" .. score, "(" .. (low + PRIORITY_STEP), "LIMIT", "0", "1")
    other = after[1]
    if other and enqueued_of(other) + cfg.min_days * DAY_MS < deadline then
      local d = known[other] or stored_deadline(qk, other)
      fits = not d or d >= deadline
    end
  end
  known[id] = deadline
  if fits then
    redis.call("ZADD", qk.avail, score, id)
    band_gate_lower(qk, cfg, deadline)
  else
    redis.call("ZADD", qk.avail, score - APART, id)
    redis.call("ZADD", qk.expiry, deadline, id)
  end
end

-- make_available for the messages of one publish into the band starting at score `low`: they have the
-- project's newest sequence numbers (nothing follows them in the band) and all the same retention
-- `deadline`, so one answer holds for all of them: whether the band's last message (before any of them
-- joins) is not kept longer. Its deadline is read only when cfg.max_days leaves the question open.
local function band_takes_newest(qk, cfg, low, deadline)
  local min, max = "0", "+inf" -- band 0 starts at 0, nothing is scored above band 9, FIFO queues have band 0
  if low > 0 then min = string.format("%d", low) end
  if low < 9 * PRIORITY_STEP and not cfg.fifo then max = string.format("%d", low + PRIORITY_STEP - 1) end
  local last = redis.call("ZREVRANGEBYSCORE", qk.avail, max, min, "LIMIT", "0", "1")[1]
  if not last or enqueued_of(last) + cfg.max_days * DAY_MS <= deadline then return true end
  local d = stored_deadline(qk, last)
  return not d or d <= deadline
end

-- Put a message (already stored in msgs) into the waiting structures; it is due at m[F_DUE].
local function enqueue(qk, cfg, id, m, now)
  if m[F_DUE] > now then
    redis.call("ZADD", qk.delayed, math.min(m[F_DUE], retention_deadline(m)), id)
  else
    make_available(qk, cfg, id, m)
  end
  if cfg.fifo then
    redis.call("ZADD", qk.gq, 0, fifo_member(m, id))
    fifo_refresh(qk, group_of(m))
  end
end

-- Take a waiting message out of avail/delayed (and the FIFO line); the caller refreshes its group.
local function leave_waiting(qk, cfg, id, m)
  redis.call("ZREM", qk.avail, id)
  redis.call("ZREM", qk.delayed, id)
  redis.call("ZREM", qk.expiry, id)
  if cfg.fifo then redis.call("ZREM", qk.gq, fifo_member(m, id)) end
end

-- Lease a message until `lease_deadline` (its inflight score is capped at its retention deadline).
local function hold(qk, id, m, lease_deadline)
  redis.call("ZADD", qk.inflight, math.min(lease_deadline, retention_deadline(m)), id)
end

-- Take a message out of flight; returns true when it was in flight.
local function leave_inflight(qk, cfg, id, m)
  if redis.call("ZREM", qk.inflight, id) == 0 then return false end
  if cfg.fifo and redis.call("HINCRBY", qk.gbusy, group_of(m), -1) <= 0 then
    redis.call("HDEL", qk.gbusy, group_of(m))
  end
  return true
end

-- A message held here as another queue's dead letter (source: its F_SOURCE) stops being listed there.
local function unindex_foreign(qk, id, source)
  if source and source ~= qk.name and redis.call("SREM", qk.foreign, id) == 1 then
    redis.call("ZREM", queue_key(qk.tag, source, "dlqidx"), qk.name .. "\0" .. id)
  end
end

-- Move a message, already out of every waiting and in-flight structure, to the dead letters of qk.
local function dead_letter(qk, cfg, id, m, reason, now)
  tally(qk, "dead_lettered", 1)
  unindex_foreign(qk, id, m[F_SOURCE])
  m[F_DEAD] = now
  m[F_REASON] = reason
  m[F_SOURCE] = qk.name
  local dk, dcfg = nil, nil
  if cfg.dlq ~= "" then
    dk = queue_keys(qk.tag, cfg.dlq)
    dcfg = load_cfg(dk)
  end
  if dcfg then
    redis.call("HDEL", qk.msgs, id)
    m[F_ATTEMPTS] = 0
    m[F_DUE] = now
    m[F_DAYS] = dcfg.retention_days
    msg_put(dk, id, m)
    redis.call("SADD", dk.foreign, id)
    enqueue(dk, dcfg, id, m, now)
    notify(dk)
    redis.call("ZADD", qk.dlqidx, now, cfg.dlq .. "\0" .. id)
  else
    msg_put(qk, id, m)
    redis.call("ZADD", qk.dead, retention_deadline(m), id)
    redis.call("ZADD", qk.dlqidx, now, qk.name .. "\0" .. id)
  end
end

-- A failed delivery of a message that just left flight: retry (due at `due`) or dead-letter.
-- Returns true when the message was requeued.
local function fail_delivery(qk, cfg, id, m, now, due, requeue, reason)
  local requeued = false
  if not requeue then
    dead_letter(qk, cfg, id, m, reason or "nack", now)
  elseif m[F_ATTEMPTS] >= 1 + cfg.max_retries then
    dead_letter(qk, cfg, id, m, "max_retries", now)
  else
    m[F_DUE] = due
    msg_put(qk, id, m)
    enqueue(qk, cfg, id, m, now)
    if due <= now then notify(qk) end
    requeued = true
  end
  if cfg.fifo then fifo_refresh(qk, group_of(m)) end
  return requeued
end

-- Delete a message wherever it is in qk (retention, purge).
local function remove_message(qk, cfg, id, m)
  leave_waiting(qk, cfg, id, m)
  leave_inflight(qk, cfg, id, m)
  if redis.call("ZREM", qk.dead, id) == 1 then
    redis.call("ZREM", qk.dlqidx, qk.name .. "\0" .. id)
  end
  unindex_foreign(qk, id, m[F_SOURCE])
  redis.call("HDEL", qk.msgs, id)
  if cfg.fifo then fifo_refresh(qk, group_of(m)) end
end

-- Bounded maintenance, safe to run from any number of callers: retention, lease expiry, due delays.
-- Returns the number of messages moved (at most `limit` of each kind). `every_time` (the background
-- maintenance): read the fronts of the bands whatever the band gate says, and bring the gate down when
-- a front's deadline is earlier (a message put there by the scripts of an older version, which do not
-- lower it, during a rolling upgrade).
local function maintain(qk, cfg, now, limit, every_time)
  local moved = 0
  local now_s, limit_s = string.format("%d", now), string.format("%d", limit) -- once, for the commands below
  -- Retention of available messages kept apart and of dead letters in the own area, then of the bands.
  for _, part in ipairs({"expiry", "dead"}) do
    for _, id in ipairs(redis.call("ZRANGEBYSCORE", qk[part], "-inf", now_s, "LIMIT", "0", limit_s)) do
      local m = msg_get(qk, id)
      if m then remove_message(qk, cfg, id, m) else redis.call("ZREM", qk[part], id) end
      moved = moved + 1
    end
  end
  -- The bands of avail: those past their deadline are the front of each band (bands 0..9; FIFO: 0), read
  -- when the band gate has come (see the header). `earliest` is the lowest deadline of the fronts that stay
  -- (or its lower bound: enqueued + the lowest retention the queue ever had, when that settles it), nil
  -- when `limit` cut it short; `check`, the gate that every_time checks.
  local gate = band_gate(qk, cfg)
  local gate_ms = gate.raised or gate.stored
  local expired = 0
  if every_time or not gate_ms or gate_ms <= now then
    local check = every_time and gate_ms or -math.huge
    local from, earliest = "0", math.huge
    local last_band = cfg.fifo and 0 or 9
    while true do
      if expired >= limit then
        earliest = nil
        break
      end
      local head = redis.call("ZRANGEBYSCORE", qk.avail, from, "+inf", "WITHSCORES", "LIMIT", "0", "1")
      if #head == 0 then break end
      local id = head[1]
      local gone = false
      local deadline = enqueued_of(id) + cfg.min_days * DAY_MS -- no earlier, whatever its retention
      if deadline <= now or deadline < check then
        local m = msg_get(qk, id)
        if not m then
          redis.call("ZREM", qk.avail, id)
          gone = true
        else
          deadline = retention_deadline(m)
          if deadline <= now then
            remove_message(qk, cfg, id, m)
            gone = true
          end
        end
      end
      if gone then
        expired = expired + 1
      else
        if deadline < earliest then earliest = deadline end
        local band = math.floor(tonumber(head[2]) / PRIORITY_STEP)
        if band >= last_band then break end
        from = (band + 1) * PRIORITY_STEP -- the next band
      end
    end
    if earliest and earliest < check then
      -- The gate was too late: deleted first (HDEL is never refused for memory, so that this write is not
      -- refused as the call's first one), then written with what the fronts hold.
      redis.call("HDEL", qk.cfg, "band_expiry_ms")
      gate.stored = nil
      gate.raised = earliest
      band_gate_flush(qk)
    elseif earliest then
      gate.raised = earliest
    end
  end
  moved = moved + expired
  -- Leases that ended, or messages in flight that reached their retention deadline first.
  local ended = redis.call("ZRANGEBYSCORE", qk.inflight, "-inf", now_s, "WITHSCORES", "LIMIT", "0", limit_s)
  for i = 1, #ended, 2 do
    local id, deadline = ended[i], tonumber(ended[i + 1])
    local m = msg_get(qk, id)
    if not m then
      redis.call("ZREM", qk.inflight, id)
    elseif retention_deadline(m) <= now then
      remove_message(qk, cfg, id, m)
    else -- the score is the lease deadline: the retry is due from then
      tally(qk, "lease_expired", 1)
      leave_inflight(qk, cfg, id, m)
      fail_delivery(qk, cfg, id, m, now, deadline, true)
    end
    moved = moved + 1
  end
  -- Due delays, or delayed messages that reached their retention deadline first.
  local promoted = 0
  for _, id in ipairs(redis.call("ZRANGEBYSCORE", qk.delayed, "-inf", now_s, "LIMIT", "0", limit_s)) do
    local m = msg_get(qk, id)
    if not m then
      redis.call("ZREM", qk.delayed, id)
    elseif retention_deadline(m) <= now then
      remove_message(qk, cfg, id, m)
    else
      redis.call("ZREM", qk.delayed, id)
      make_available(qk, cfg, id, m)
      promoted = promoted + 1
    end
    moved = moved + 1
  end
  if promoted > 0 then notify(qk) end
  if moved > 0 then band_gate_flush(qk) end -- else the caller may flush it after a write of its own
  return moved
end

-- Maintenance of a queue and of its named dead-letter queue: the dead letters of qk waiting there are
-- listed and counted with qk, so a lease ending there (or their retention) must apply first.
local function maintain_with_dlq(qk, cfg, now, limit)
  local moved = maintain(qk, cfg, now, limit)
  if cfg.dlq ~= "" then
    local dk = queue_keys(qk.tag, cfg.dlq)
    local dcfg = load_cfg(dk)
    if dcfg then moved = moved + maintain(dk, dcfg, now, limit) end
  end
  return moved
end

-- When the oldest available message of qk was enqueued (ms), or -1: the lowest sequence within each band
-- (9 - priority; FIFO: one band), over both regions of avail, by the enqueued time its id holds.
local function oldest_available(qk, cfg)
  local fronts = {} -- band -> {id, score within its region}
  local regions = {0}
  if redis.call("EXISTS", qk.expiry) == 1 then regions[2] = -APART end -- "expiry" indexes the ones apart
  local last_band = cfg.fifo and 0 or 9
  for _, region in ipairs(regions) do
    local from = region
    while true do
      local head = redis.call("ZRANGEBYSCORE", qk.avail, from, "(" .. (region + APART), "WITHSCORES", "LIMIT", "0",
        "1")
      if #head == 0 then break end
      local score = tonumber(head[2]) - region
      local band = math.floor(score / PRIORITY_STEP)
      if not fronts[band] or score < fronts[band][2] then fronts[band] = {head[1], score} end
      if band >= last_band then break end
      from = region + (band + 1) * PRIORITY_STEP
    end
  end
  local oldest = -1
  for _, front in pairs(fronts) do
    if redis.call("HEXISTS", qk.msgs, front[1]) == 1 then
      local enqueued = enqueued_of(front[1])
      if oldest < 0 or enqueued < oldest then oldest = enqueued end
    end
  end
  return oldest
end
