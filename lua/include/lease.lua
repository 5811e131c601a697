-- Checks shared by ack, nack and extend: the message must be in this queue and leased under `receipt`.
-- Returns the message, or raises MESSAGE_NOT_FOUND (unknown here, or past retention) / LEASE_EXPIRED (not
-- leased, or leased under another receipt). A lease past its deadline is no longer held.
local function leased_message(qk, id, receipt, now, field)
  local m = msg_get(qk, id)
  if not m or retention_deadline(m) <= now then  -- past retention: deleted, even if not swept yet
    fail("MESSAGE_NOT_FOUND", "message '" .. id .. "' is not in this queue", field)
  end
  local deadline = redis.call("ZSCORE", qk.inflight, id) -- the lease deadline, as retention is still ahead
  if not deadline or tonumber(deadline) <= now then
    fail("LEASE_EXPIRED", "message '" .. id .. "' is not leased", field)
  end
  if receipt ~= "" and receipt ~= receipt_of(id, m) then
    fail("LEASE_EXPIRED", "receipt does not name the current lease of message '" .. id .. "'", "receipt")
  end
  return m
end
