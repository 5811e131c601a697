-- Idempotency records: key -> cmsgpack {fingerprint, reply}, kept 24 h.
-- An empty fingerprint means the request carried no idempotency key.
local IDEMPOTENCY_TTL_MS = 86400000
-- A message fingerprint that starts with "sqs:" is an SQS deduplication id (docs/sqs.md): kept for SQS's
-- 5-minute deduplication window instead.
local SQS_DEDUP_TTL_MS = 300000

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
    local ttl = IDEMPOTENCY_TTL_MS
    if string.sub(fingerprint, 1, 4) == "sqs:" then ttl = SQS_DEDUP_TTL_MS end
    redis.call("SET", key, cmsgpack.pack({fingerprint, reply}), "PX", ttl)
  end
end
