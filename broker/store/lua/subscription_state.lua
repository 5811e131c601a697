-- subscription_state: record a successful push attempt (the message itself is acked with ack.lua).
-- Nothing is written when the subscription was removed or replaced since the attempt started.
--
-- KEYS[1]  hash    cfg of the queue (its other keys are derived with queue_keys, same hash tag)
-- ARGV[1]  project tag (v1:{P})
-- ARGV[2]  queue name
-- ARGV[3]  now, ms
-- ARGV[4]  generation of the subscription that made the attempt
-- ARGV[5]  HTTP status of the answer
-- Returns: 1 when recorded, 0 otherwise.
-- Errors: none.
--@include push

local qk = target_queue()
local now = to_int(ARGV[3], "now")
local generation = to_int(ARGV[4], "generation")
local status = to_int(ARGV[5], "status")
return record_attempt(qk, load_sub(qk), generation, now, status, "", true, false) and 1 or 0
