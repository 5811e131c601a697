-- Checks shared by ack, nack and extend: the message must be in this queue and leased under `receipt`.
-- A lease past its deadline is no longer held.

-- Why message `id` cannot be settled under `receipt` ("" = any current lease), given its stored array `s`
-- (nil when it has none) and its inflight score `score` (false when it has none): MESSAGE_NOT_FOUND
-- (unknown here, or past retention) or LEASE_EXPIRED (not leased, or leased under another receipt), with
-- the message and the field to name ("receipt", or nil for the caller's); nil when it is leased so.
local function lease_problem(id, s, score, receipt, now, rkey)
  -- The inflight score is the lease deadline capped at the retention deadline (hold): a score ahead of
  -- now says both are ahead, and retention is computed only otherwise.
  local held = score and tonumber(score) > now
  -- Past retention, a message is deleted even if not swept yet.
  if not s or (not held and enqueued_of(id) + s[1] * DAY_MS <= now) then
    return "MESSAGE_NOT_FOUND", "message '" .. id .. "' is not in this queue"
  end
  if not held then -- the score is the lease deadline, as retention is still ahead
    return "LEASE_EXPIRED", "message '" .. id .. "' is not leased"
  end
  if receipt ~= "" and (not rkey or receipt ~= lease_receipt(rkey, id, s[6] or 0)) then
    return "LEASE_EXPIRED", "receipt does not name the current lease of message '" .. id .. "'", "receipt"
  end
  return nil
end

-- The stored array of a stored value `raw` (false/nil: none).
local function lease_state(raw)
  if not raw then return nil end
  local _, s = cmsgpack.unpack_one(raw)
  return s
end

-- The checks on message `id` given its stored value `raw` and its inflight score `score` (false when it
-- has none): raises the error of lease_problem, naming `field` (or "receipt"). Returns its stored array
-- (cmsgpack.unpack_one of `raw`), as read.
local function check_lease(id, raw, score, receipt, now, field, rkey)
  local s = lease_state(raw)
  local code, message, named = lease_problem(id, s, score, receipt, now, rkey)
  if code then fail(code, message, named or field) end
  return s
end

-- The checks for one message, read here (`cfg` as load_cfg has it). Returns the message.
local function leased_message(qk, cfg, id, receipt, now, field)
  local raw = redis.call("HGET", qk.msgs, id)
  check_lease(id, raw, raw and redis.call("ZSCORE", qk.inflight, id), receipt, now, field, cfg.rkey)
  return msg_decode(id, raw)
end
