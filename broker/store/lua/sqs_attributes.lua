-- sqs_attributes: set and remove SQS-only attributes and tags of a queue (the queue's "sqs" hash,
-- docs/sqs.md); the queue must exist. All changes or none.
--
-- KEYS[1]  hash    cfg of the queue (its other keys are derived with queue_keys, same hash tag)
-- ARGV[1]  project tag (v1:{P})
-- ARGV[2]  queue name
-- ARGV[3]  number of fields to set, n
-- ARGV[4 .. 3+2n]  field, value pairs to set
-- ARGV[4+2n ..]    fields to remove
-- Returns: the number of fields the hash holds afterwards.
-- Errors: QUEUE_NOT_FOUND.
--@include queue

local qk = target_queue()
local n = to_int(ARGV[3], "n", 0)
require_cfg(qk)
if 3 + 2 * n > #ARGV then fail("INTERNAL", "fewer field, value pairs than announced") end
if n > 0 then redis.call("HSET", qk.sqs, unpack(ARGV, 4, 3 + 2 * n)) end
if #ARGV > 3 + 2 * n then redis.call("HDEL", qk.sqs, unpack(ARGV, 4 + 2 * n, #ARGV)) end
return redis.call("HLEN", qk.sqs)
