-- publish: store and enqueue one or more messages (queue.publish and queue.publish_batch), all or nothing.
-- The idempotency checks (per request and per message) and the enqueue are this one atomic step.
--
-- KEYS[1]   hash    cfg of the queue (its other keys are derived with queue_keys, same hash tag)
-- KEYS[2]   string  project sequence (v1:{P}:seq)
-- KEYS[3]   string  idempotency record of the request (the tag when there is no key)
-- KEYS[4]   hash    the project's account (v1:{P}:account, lua/include/account.lua)
-- KEYS[5..] string  idempotency record of each message with a fingerprint, in message order (the k-th
--                   such message has KEYS[4 + k]; a message without one has no key)
-- ARGV[1]   project tag (v1:{P})
-- ARGV[2]   queue name
-- ARGV[3]   now, ms
-- ARGV[4]   request fingerprint, "" without a request idempotency key
-- ARGV[5]   field prefix for errors: "" (publish) or "messages" (publish_batch)
-- ARGV[6]   number of messages n
-- ARGV[7]   the columns given after the payloads, in this order: "d" delay ms, "p" priority 0..9, "g"
--           group id ("" for none), "f" fingerprint ("" without a message idempotency key), "x" extra bytes
--           kept with the message (F_EXTRA: the SQS edge's attributes; "" none). A column is left out when
--           every message has its default (0, 0, "", "", ""): "" when all are.
-- ARGV[8 .. 7+n]  the payloads (compact JSON), message 1 to n
-- then each column of ARGV[7] in turn: n values, message 1 to n
-- Returns: the message ids, in order (an id already published under a message's key is returned again).
-- Errors: QUEUE_NOT_FOUND; VALIDATION_ERROR (delay not below the retention period);
--         IDEMPOTENCY_KEY_REUSED; the account's (UNAUTHORIZED, INSUFFICIENT_CREDIT, QUOTA_EXCEEDED).
--@include lifecycle
--@include idem
--@include account

local argv = ARGV -- a local: the loops below read it a few times per message
local qk = target_queue()
local now = to_int(ARGV[3], "now")
local request_fp = ARGV[4]
local n = to_int(ARGV[6], "n", 0)

-- Where each column starts (its value for message i is argv[column + i]); nil when left out.
local columns, last = ARGV[7] or "", 7 + n
local delay_at, priority_at, group_at, fp_at, extra_at = nil, nil, nil, nil, nil
local known = ""
if columns ~= "" then
  if string.find(columns, "d", 1, true) then delay_at, last = last, last + n end
  if string.find(columns, "p", 1, true) then priority_at, last = last, last + n end
  if string.find(columns, "g", 1, true) then group_at, last = last, last + n end
  if string.find(columns, "f", 1, true) then fp_at, last = last, last + n end
  if string.find(columns, "x", 1, true) then extra_at, last = last, last + n end
  known = (delay_at and "d" or "") .. (priority_at and "p" or "") .. (group_at and "g" or "") .. (fp_at and "f" or "")
    .. (extra_at and "x" or "")
end
if columns ~= known or #ARGV ~= last then
  fail("INTERNAL", "arguments do not match the columns '" .. columns .. "' of " .. n .. " messages")
end

local cached = idem_lookup(KEYS[3], request_fp)
if cached then return cached end
local cfg = require_publish_cfg(qk)
local retention_ms = cfg.retention_ms

local function field(i, name)
  if ARGV[5] == "" then return name end
  return ARGV[5] .. "[" .. (i - 1) .. "]." .. name
end
local acct = account_open(KEYS[4], ARGV[1], ARGV[5] == "" and "queue.publish" or "queue.publish_batch", n)
account_payloads(acct, argv, 8, n, field)

-- Validate everything before the first write; delays and priorities other than "0" are kept by index. A
-- message with a key published earlier gets its id now (ids[i]); one whose key an earlier message of this
-- call has gets that message's id at the end (copy_of[i]); the others (`fresh`) are published.
local ids = {}
local delays, priorities, copy_of, first_with_key = nil, nil, nil, nil
local keyed = 0
local fresh = n
for i = 1, n do
  if delay_at and argv[delay_at + i] ~= "0" then
    local delay = to_int(argv[delay_at + i], "delay", 0)
    if delay >= retention_ms then
      fail("VALIDATION_ERROR", "delay_seconds must be shorter than the queue's retention period",
        field(i, "delay_seconds"))
    end
    if not delays then delays = {} end
    delays[i] = delay
  end
  if priority_at and argv[priority_at + i] ~= "0" then
    if not priorities then priorities = {} end
    priorities[i] = to_int(argv[priority_at + i], "priority", 0, 9)
  end
  local fp = fp_at and argv[fp_at + i] or ""
  if fp ~= "" then
    keyed = keyed + 1
    local key = KEYS[4 + keyed]
    if not key then fail("INTERNAL", "fewer KEYS than messages with an idempotency key") end
    if not first_with_key then first_with_key = {} end
    local first = first_with_key[key] -- idempotency key -> index of the first message of this call with it
    if first then
      if argv[fp_at + first] ~= fp then
        fail("IDEMPOTENCY_KEY_REUSED", "idempotency key used twice with different messages", field(i, "idempotency_key"))
      end
      if not copy_of then copy_of = {} end
      copy_of[i] = first
      fresh = fresh - 1
    else
      first_with_key[key] = i
      local prior = idem_lookup(key, fp, field(i, "idempotency_key"))
      if prior then
        ids[i] = prior[1]
        fresh = fresh - 1
      end
    end
  end
end
if #KEYS ~= 4 + keyed then fail("INTERNAL", "more KEYS than messages with an idempotency key") end

-- The fresh messages take the next `fresh` numbers of the project sequence, in order. All share the
-- retention deadline, so each band of avail takes all of them or keeps all apart (band_takes_newest).
-- Scores go to Redis as strings formatted here (see lua/include/calls.lua).
account_admit_messages(acct, fresh)
local seq = 0
if fresh == 1 then
  seq = redis.call("INCR", KEYS[2]) - 1
elseif fresh > 1 then
  seq = redis.call("INCRBY", KEYS[2], string.format("%d", fresh)) - fresh
end
local deadline = now + retention_ms
local time_part = id_time_part(now)
local days, fifo, by_priority = cfg.retention_days, cfg.fifo, cfg.priority
local values, nv = {}, 0  -- HSET msgs: id, value ...
local avail, na = {}, 0   -- ZADD avail: score, id ...
local apart, np = nil, 0  -- ZADD expiry: deadline, id ... (those scored APART lower in avail)
local later, nd = nil, 0  -- ZADD delayed: due, id ...
local line, nl = nil, 0   -- FIFO: ZADD gq: 0, member ...
local groups, first_member, first_due = nil, nil, nil -- FIFO: the groups published to (fifo_refresh_published)
local band_fits = {}      -- band low -> band_takes_newest
local in_band = false     -- some joined a band (not apart): the band gate may come earlier (band_gate_lower)
local plain_state = {}    -- priority -> stored array of a message due now, in no group
local key_index = 4
local stored_bytes = 0
for i = 1, n do
  local fp = fp_at and argv[fp_at + i] or ""
  if fp ~= "" then key_index = key_index + 1 end
  if not ids[i] and not (copy_of and copy_of[i]) then
    seq = seq + 1
    local id = new_message_id(time_part, seq)
    local delay = delays and delays[i] or 0
    local priority = priorities and priorities[i] or 0
    local group = group_at and argv[group_at + i] or ""
    if group == "" then group = false end
    local state
    local extra = extra_at and argv[extra_at + i] or ""
    if extra ~= "" then
      state = new_state_extra(days, priority, delay, group, seq, extra)
    elseif delay == 0 and not group and seq < 4294967296 then
      state = plain_state[priority]
      if not state then
        state = new_state(days, priority, 0, false, seq)
        plain_state[priority] = state
      end
    else
      state = new_state(days, priority, delay, group, seq)
    end
    values[nv + 1] = id
    values[nv + 2] = state .. argv[7 + i]
    stored_bytes = stored_bytes + #argv[7 + i]
    nv = nv + 2
    if delay == 0 then
      local low = 0
      if not fifo then
        low = (by_priority and 9 - priority or 9) * PRIORITY_STEP
      end
      local fits = band_fits[low]
      if fits == nil then
        fits = band_takes_newest(qk, cfg, low, deadline)
        band_fits[low] = fits
      end
      if fits then
        avail[na + 1] = string.format("%d", low + seq)
        in_band = true
      else
        avail[na + 1] = string.format("%d", low + seq - APART)
        if not apart then apart = {} end
        apart[np + 1] = string.format("%d", deadline)
        apart[np + 2] = id
        np = np + 2
      end
      avail[na + 2] = id
      na = na + 2
    else
      if not later then later = {} end
      later[nd + 1] = string.format("%d", now + delay) -- the due time, before the retention deadline
      later[nd + 2] = id
      nd = nd + 2
    end
    if fifo then
      local member = fifo_line_member(group or "", seq, now)
      if not line then line, groups, first_member, first_due = {}, {}, {}, {} end
      line[nl + 1] = "0"
      line[nl + 2] = member
      nl = nl + 2
      if not first_member[group or ""] then
        groups[#groups + 1] = group or ""
        first_member[group or ""] = member
        first_due[group or ""] = now + delay
      end
    end
    if fp ~= "" then idem_store(KEYS[key_index], fp, {id}) end
    ids[i] = id
  end
end
if nv > 0 then call_many("HSET", qk.msgs, values, nv) end
if na > 0 then call_many("ZADD", qk.avail, avail, na) end
if in_band then band_gate_lower(qk, cfg, deadline) end
if np > 0 then call_many("ZADD", qk.expiry, apart, np) end
if nd > 0 then call_many("ZADD", qk.delayed, later, nd) end
if nl > 0 then
  call_many("ZADD", qk.gq, line, nl)
  fifo_refresh_published(qk, groups, first_member, first_due)
end
if copy_of then
  for i, first in pairs(copy_of) do ids[i] = ids[first] end
end
if na > 0 then notify(qk) end
if nv > 0 then tally(qk, "published", nv / 2) end
flush_tallies()
account_settle(acct, now)
account_meter(acct, now, "published", nv / 2)
account_meter(acct, now, "bytes", stored_bytes)
idem_store(KEYS[3], request_fp, ids)
return ids
