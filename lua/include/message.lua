-- The stored form of a message: one field of the queue's "msgs" hash, a cmsgpack array.
-- Absent optional values are false (cmsgpack arrays cannot hold nil).
local F_ATTEMPTS = 1   -- deliveries in the current retry budget (reset when dead-lettered to a DLQ or redriven)
local F_LEASE = 2      -- deliveries ever; names the current lease in receipts, never reset
local F_PRIORITY = 3   -- 0..9 as published
local F_ENQUEUED = 4   -- ms of the first publish (retention counts from here)
local F_SEQ = 5        -- project sequence number at publish (FIFO order, tie-break)
local F_GROUP = 6      -- FIFO group id or false
local F_SOURCE = 7     -- queue it was dead-lettered from, or false
local F_DEAD = 8       -- ms it was dead-lettered, or false
local F_REASON = 9     -- "nack" | "max_retries" | "push_failed", or false
local F_DUE = 10       -- ms from which it may be delivered
local F_ERROR = 11     -- last push status/error kept on a dead letter, or false
local F_PAYLOAD = 12   -- compact JSON text

local PRIORITY_STEP = 4398046511104 -- 2^42: sequence numbers stay below it, scores stay exact doubles

local function msg_get(qk, id)
  local raw = redis.call("HGET", qk.msgs, id)
  if not raw then return nil end
  return cmsgpack.unpack(raw)
end

local function msg_put(qk, id, m)
  redis.call("HSET", qk.msgs, id, cmsgpack.pack(m))
end

-- Available order: highest priority first (when the queue honours priority), then publish order.
local function avail_score(cfg, m)
  if cfg.fifo then return m[F_SEQ] end
  local priority = 0
  if cfg.priority then priority = m[F_PRIORITY] end
  return (9 - priority) * PRIORITY_STEP + m[F_SEQ]
end

local function group_of(m)
  return m[F_GROUP] or ""
end

-- FIFO waiting-line member: lexicographic order is group, then sequence.
local function fifo_member(m, id)
  return group_of(m) .. "\0" .. string.format("%016d", m[F_SEQ]) .. "\0" .. id
end

local function fifo_member_id(member)
  -- Lua 5.1 patterns cannot hold a literal NUL byte; %z matches it.
  return string.match(member, "%z[0-9]+%z(.*)$")
end

-- Unique, sortable by publish time: 11 hex digits of ms, 8 of the project sequence.
local function new_message_id(now_ms, seq)
  return string.format("%011x%08x", now_ms, seq % 4294967296)
end

local function receipt_of(id, m)
  return id .. "." .. m[F_LEASE]
end
