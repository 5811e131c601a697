-- Idempotency records: key -> cmsgpack {fingerprint, reply}, kept 24 h.
-- An empty fingerprint means the request carried no idempotency key.
local IDEMPOTENCY_TTL_MS = 86400000

-- The stored reply for this key, or nil; raises IDEMPOTENCY_KEY_REUSED for a different request, naming
-- `field` (default "idempotency_key").
local function idem_lookup(key, fingerprint, field)
  if fingerprint == "" then return nil end
  local raw = redis.call("GET", key)
  if not raw then return nil end
  local record = cmsgpack.unpack(raw)
  if record[1] ~= fingerprint then
    fail("IDEMPOTENCY_KEY_REUSED", "idempotency key was already used with a different request",
      field or "idempotency_key")
  end
  return record[2]
end

local function idem_store(key, fingerprint, reply)
  if fingerprint ~= "" then
    redis.call("SET", key, cmsgpack.pack({fingerprint, reply}), "PX", IDEMPOTENCY_TTL_MS)
  end
end
