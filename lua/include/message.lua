-- A message in scripts is a Lua table indexed by the F_* fields below (absent optional values are false).
-- Stored, it is one field of the queue's "msgs" hash, id -> value, kept small (docs/design.md, "Memory
-- per message"):
--   value = cmsgpack array {retention days, priority, due - enqueued, group, attempts, lease,
--                           sequence / 2^32, source, dead-lettered - enqueued, reason, error}
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

local DAY_MS = 86400000
local PRIORITY_STEP = 4398046511104 -- 2^42: sequence numbers stay below it, scores stay exact doubles
-- Available messages whose retention deadline is out of their band's order (see lifecycle.lua) are scored
-- this much lower: a region of negative scores of its own, in the same order.
local APART = 70368744177664 -- 2^46

-- Unique, sortable by publish time: 11 hex digits of ms, 8 of the project sequence.
local function new_message_id(now_ms, seq)
  return string.format("%011x%08x", now_ms, seq % 4294967296)
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
    s[11] or false, payload, s[1],
  }
end

local function msg_get(qk, id)
  local raw = redis.call("HGET", qk.msgs, id)
  if not raw then return nil end
  return msg_decode(id, raw)
end

-- msg_put and msg_decode name the fields by number (F_* above, and the stored order in the header): every
-- script creates its functions on each call, and each outer local a function uses costs at creation.
local function msg_put(qk, id, m)
  local enqueued = m[4]
  local s = {m[13], m[3], m[10] - enqueued, m[6] or false, m[1], m[2], math.floor(m[5] / 4294967296),
    m[7] or false, m[8] and m[8] - enqueued or false, m[9] or false, m[11] or false}
  -- Leave out the trailing defaults: 0 for the numbers (3, 5, 6, 7), false for the others.
  local n = 11
  while n > 2 and (s[n] == false or (s[n] == 0 and n ~= 4 and n < 8)) do
    s[n] = nil
    n = n - 1
  end
  redis.call("HSET", qk.msgs, id, cmsgpack.pack(s) .. m[12])
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
local function fifo_member(m, id)
  return group_of(m) .. "\0" .. string.format("%011x%011x", m[F_SEQ], m[F_ENQUEUED])
end

local function fifo_member_id(member)
  local seq = tonumber(string.sub(member, -22, -12), 16)
  return string.sub(member, -11) .. string.format("%08x", seq % 4294967296)
end

local function receipt_of(id, m)
  return id .. "." .. m[F_LEASE]
end
