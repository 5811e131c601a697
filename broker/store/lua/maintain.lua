-- maintain: apply retention, ended leases and due delays to one queue (background maintenance).
-- Bounded: at most `limit` messages of each kind per call; idempotent, so any number of workers may
-- call it at once. Callers repeat while it returns as many moves as they allow.
--
-- KEYS[1]  hash    cfg of the queue (its other keys are derived with queue_keys, same hash tag)
-- ARGV[1]  project tag (v1:{P})
-- ARGV[2]  queue name
-- ARGV[3]  now, ms
-- ARGV[4]  limit per kind, >= 1
-- Returns: the number of messages moved or deleted (0 when the queue no longer exists).
-- Errors: none.
--@include lifecycle

local qk = target_queue()
local now = to_int(ARGV[3], "now")
local limit = to_int(ARGV[4], "limit", 1)
local cfg = load_cfg(qk)
if not cfg then return 0 end
local moved = maintain(qk, cfg, now, limit, true) -- the fronts read every time (lifecycle.lua)
flush_tallies()
return moved
