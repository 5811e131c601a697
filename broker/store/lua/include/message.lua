-- A message in scripts is a Lua table indexed by the F_* fields below (absent optional values are false).
-- Stored, it is one field of the queue's "msgs" hash, id -> value, kept small (docs/design.md, "Memory
-- per message"):
--   value = cmsgpack array {retention days, priority, due - enqueued, group, attempts, lease,
--                           sequence / 2^32, source, dead-lettered - enqueued, reason, error, extra}
--           followed by the payload bytes as they are (no length header).
-- The array leaves out its trailing fields that hold their defaults (0 for the due offset, the delivery
-- counts and the sequence part, false for the others), so a message that is due from its publish and was
-- never delivered stores {days, priority} (3 bytes) before its payload. The enqueued
-- time and the sequence are not stored: the id holds the enqueued ms and the low 32 bits of the sequence
-- (new_message_id), the array the rest of the sequence.
local F_ATTEMPTS = 1   -- deliveries in the current retry budget (reset when dead-lettered to a DLQ or redriven)
local F_LEASE = 2      -- deliveries ever; names the current lease in receipts, never reset
local F_PRIORITY = 3   -- 0..9 as published
local F_ENQUEUED = 4   -- ms of the first publish (retention counts from here); from the id
local F_SEQ = 5        -- project sequence number at publish (FIFO order, tie-break); low bits from the id
local F_GROUP = 6      -- FIFO group id or false
local F_SOURCE = 7     -- queue it was dead-lettered from, or false
local F_DEAD = 8       -- ms it was dead-lettered, or false
local F_REASON = 9     -- "nack" | "max_retries" | "push_failed", or false
local F_DUE = 10       -- ms from which it may be delivered
local F_ERROR = 11     -- last push status/error kept on a dead letter, or false
local F_PAYLOAD = 12   -- compact JSON text
local F_DAYS = 13      -- retention in days given when it entered this queue: deleted at enqueued + days
local F_EXTRA = 14     -- opaque bytes kept with the message for the SQS edge (its attributes), or false

local DAY_MS = 86400000
local PRIORITY_STEP = 4398046511104 -- 2^42: sequence numbers stay below it, scores stay exact doubles
-- Available messages whose retention deadline is out of their band's order (see lifecycle.lua) are scored
-- this much lower: a region of negative scores of its own, in the same order.
local APART = 70368744177664 -- 2^46

-- Unique, sortable by publish time: 11 hex digits of ms, 8 of the project sequence. `time_part` is
-- id_time_part(ms), formatted once for all the ids of a call.
local function id_time_part(now_ms)
  return string.format("%011x", now_ms)
end

local function new_message_id(time_part, seq)
  return time_part .. string.format("%08x", seq % 4294967296)
end

local function enqueued_of(id)
  return tonumber(string.sub(id, 1, 11), 16)
end

local function msg_decode(id, raw)
  local offset, s = cmsgpack.unpack_one(raw)
  local payload = ""
  if offset >= 0 then payload = string.sub(raw, offset + 1) end
  local enqueued = tonumber(string.sub(id, 1, 11), 16)
  return {
    s[5] or 0, s[6] or 0, s[2], enqueued, (s[7] or 0) * 4294967296 + tonumber(string.sub(id, 12), 16),
    s[4] or false, s[8] or false, s[9] and enqueued + s[9] or false, s[10] or false, enqueued + (s[3] or 0),
    s[11] or false, payload, s[1], s[12] or false,
  }
end

local function msg_get(qk, id)
  local raw = redis.call("HGET", qk.msgs, id)
  if not raw then return nil end
  return msg_decode(id, raw)
end

-- The stored array (the value before the payload) from its 12 fields, `s`, in the stored order: the trailing
-- defaults are left out (0 for the numbers 3, 5, 6, 7; false for the others).
local function state_pack(s)
  local n = 12
  while n > 2 and (not s[n] or (s[n] == 0 and n ~= 4 and n < 8)) do
    s[n] = nil
    n = n - 1
  end
  return cmsgpack.pack(s)
end

-- The stored array of a message entering a queue by publish (never delivered, not a dead letter); msg_put
-- stores the same. `group` false for none. The common ones are written directly: in msgpack an array of 2
-- (146), 3 (147) or 4 (148) elements: positive fixints (below 128), and a group as a short string.
local function new_state(days, priority, due_offset, group, seq)
  if seq < 4294967296 and days < 128 and due_offset < 128 then
    if not group then
      if due_offset == 0 then return string.char(146, days, priority) end
      return string.char(147, days, priority, due_offset)
    end
    -- {days, priority, due offset, group}: a 4-element array (148), then the group as a fixstr (160 + length).
    if #group < 32 then return string.char(148, days, priority, due_offset, 160 + #group) .. group end
  end
  return state_pack({days, priority, due_offset, group, 0, 0, math.floor(seq / 4294967296), false, false, false,
    false})
end

-- The stored array of a message published with `extra` bytes (F_EXTRA, not ""): new_state's fields, then it.
local function new_state_extra(days, priority, due_offset, group, seq, extra)
  return cmsgpack.pack({days, priority, due_offset, group, 0, 0, math.floor(seq / 4294967296), false, false, false,
    false, extra})
end

-- The stored array `s` as read (cmsgpack.unpack_one of a stored value) after one more delivery: counts one
-- more attempt and lease. Returns the packed array (what msg_put stores for it), the attempts and the lease.
local function delivered_state(s)
  local attempts, lease = (s[5] or 0) + 1, (s[6] or 0) + 1
  local due_offset = s[3] or 0
  if s[7] == nil and not s[4] and s[1] < 128 and s[2] < 128 and due_offset >= 0 and due_offset < 128
      and attempts < 128 and lease < 128 then
    -- The common one, written directly: a 6-element array (150) of positive fixints (below 128) and false
    -- (194) for the group.
    return string.char(150, s[1], s[2], due_offset, 194, attempts, lease), attempts, lease
  end
  if s[3] == nil then s[3] = 0 end
  if s[4] == nil then s[4] = false end
  s[5] = attempts
  s[6] = lease -- nonzero: the fields after it are as read, their trailing defaults already left out
  return cmsgpack.pack(s), attempts, lease
end

-- msg_put and msg_decode name the fields by number (F_* above, and the stored order in the header): every
-- script creates its functions on each call, and each outer local a function uses costs at creation.
local function msg_put(qk, id, m)
  local enqueued = m[4]
  redis.call("HSET", qk.msgs, id, state_pack({m[13], m[3], m[10] - enqueued, m[6] or false, m[1], m[2],
    math.floor(m[5] / 4294967296), m[7] or false, m[8] and m[8] - enqueued or false, m[9] or false,
    m[11] or false, m[14] or false}) .. m[12])
end

-- When retention deletes the message.
local function retention_deadline(m)
  return m[F_ENQUEUED] + m[F_DAYS] * DAY_MS
end

-- The same for the message `id` of qk without decoding it all, or nil when there is none.
local function stored_deadline(qk, id)
  local raw = redis.call("HGET", qk.msgs, id)
  if not raw then return nil end
  local _, s = cmsgpack.unpack_one(raw)
  return tonumber(string.sub(id, 1, 11), 16) + s[1] * 86400000
end

-- The due time of the message `id` of qk without decoding it all, or nil when there is none.
local function stored_due(qk, id)
  local raw = redis.call("HGET", qk.msgs, id)
  if not raw then return nil end
  local _, s = cmsgpack.unpack_one(raw)
  return enqueued_of(id) + (s[3] or 0)
end

-- Available order: highest priority first (when the queue honours priority), then publish order. The
-- score's band (score / PRIORITY_STEP) is 9 - priority; FIFO queues have one band, 0.
local function avail_score(cfg, m)
  if cfg.fifo then return m[F_SEQ] end
  local priority = 0
  if cfg.priority then priority = m[F_PRIORITY] end
  return (9 - priority) * PRIORITY_STEP + m[F_SEQ]
end

local function group_of(m)
  return m[F_GROUP] or ""
end

-- FIFO waiting-line member: group, NUL, then the sequence and the enqueued ms in 11 hex digits each, so
-- lexicographic order is group, then sequence; the id is rebuilt from them.
local function fifo_line_member(group, seq, enqueued)
  return group .. "\0" .. string.format("%011x%011x", seq, enqueued)
end

local function fifo_member(m, id)
  return fifo_line_member(group_of(m), m[F_SEQ], m[F_ENQUEUED])
end

local function fifo_member_id(member)
  local seq = tonumber(string.sub(member, -22, -12), 16)
  return string.sub(member, -11) .. string.format("%08x", seq % 4294967296)
end

-- The receipt of lease number `lease` of message `id`: the lease number and a MAC of the message id and
-- the lease under the queue's receipt key (cfg field "rkey", random, set by the first claim), so that only
-- a holder of that lease can present it. ack, nack and extend check it; a queue with no key yet has issued
-- no receipt, and accepts none.
local function lease_receipt(rkey, id, lease)
  local n = string.format("%d", lease)
  return n .. "." .. string.sub(redis.sha1hex(rkey .. "\0" .. id .. "\0" .. n), 1, 24)
end

local function receipt_of(rkey, id, m)
  return lease_receipt(rkey, id, m[F_LEASE])
end
