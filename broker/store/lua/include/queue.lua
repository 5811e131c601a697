--@include keys
--@include errors
-- Loading a queue: its keys and its configuration.

-- The target queue of a script: KEYS[1] is its cfg hash, ARGV[1] the project tag, ARGV[2] its name.
local function target_queue()
  local qk = queue_keys(ARGV[1], ARGV[2])
  if qk.cfg ~= KEYS[1] then fail("INTERNAL", "KEYS[1] does not match the queue's cfg key") end
  return qk
end

-- The configuration of a queue, or nil when it does not exist. min_days and max_days bound the retention
-- of every message the queue holds (the lowest and highest retention_days it ever had; 1 and unbounded
-- for a queue created without them). band_expiry: no message in a band of avail reaches its retention
-- deadline before this (ms, math.huge when none can), nil when unknown (a queue stored without it); see
-- the band gate in lifecycle.lua.
local function load_cfg(qk)
  local v = redis.call("HMGET", qk.cfg, "type", "dlq", "max_retries", "retention_days", "visibility",
    "priority", "created_ms", "retention_min_days", "retention_max_days", "rkey", "band_expiry_ms")
  if not v[1] then return nil end
  return {
    type = v[1], fifo = (v[1] == "fifo"), dlq = v[2] or "", max_retries = tonumber(v[3]),
    retention_days = tonumber(v[4]), retention_ms = tonumber(v[4]) * 86400000,
    visibility_ms = tonumber(v[5]) * 1000, priority = (v[6] == "1"), created_ms = tonumber(v[7]),
    min_days = tonumber(v[8] or "1"), max_days = tonumber(v[9] or "inf"), rkey = v[10],
    band_expiry = tonumber(v[11] or ""),
  }
end

local function require_cfg(qk)
  local cfg = load_cfg(qk)
  if not cfg then fail("QUEUE_NOT_FOUND", "queue '" .. qk.name .. "' does not exist", "queue") end
  return cfg
end

-- What a publish reads of the configuration (load_cfg reads it all, at about three times the cost), or
-- QUEUE_NOT_FOUND: fifo, priority, retention_days, retention_ms, max_days and band_expiry, as load_cfg
-- has them.
local function require_publish_cfg(qk)
  local v = redis.call("HMGET", qk.cfg, "type", "retention_days", "priority", "retention_max_days", "band_expiry_ms")
  if not v[1] then fail("QUEUE_NOT_FOUND", "queue '" .. qk.name .. "' does not exist", "queue") end
  local days = tonumber(v[2])
  local max_days = days
  if v[4] ~= v[2] then max_days = tonumber(v[4] or "inf") end
  return {fifo = (v[1] == "fifo"), priority = (v[3] == "1"), retention_days = days, retention_ms = days * 86400000,
    max_days = max_days, band_expiry = tonumber(v[5] or "")}
end

-- Whether the queue is FIFO and its receipt key (false when none), all that ack reads of the
-- configuration; or QUEUE_NOT_FOUND.
local function require_ack_cfg(qk)
  local v = redis.call("HMGET", qk.cfg, "type", "rkey")
  if not v[1] then fail("QUEUE_NOT_FOUND", "queue '" .. qk.name .. "' does not exist", "queue") end
  return v[1] == "fifo", v[2]
end

-- The configuration as a flat reply: name, type, dlq, max_retries, retention_days, visibility, priority, created_ms.
local function cfg_reply(qk)
  local v = redis.call("HMGET", qk.cfg, "type", "dlq", "max_retries", "retention_days", "visibility",
    "priority", "created_ms")
  return {qk.name, v[1], v[2] or "", tonumber(v[3]), tonumber(v[4]), tonumber(v[5]), tonumber(v[6]), tonumber(v[7])}
end
