-- get_queue: a queue's settings (queue.get), charged like every capability of the contract.
--
-- KEYS[1]  hash    cfg of the queue (its other keys are derived with queue_keys, same hash tag)
-- KEYS[2]  hash    the project's account (lua/include/account.lua)
-- ARGV[1]  project tag (v1:{P})
-- ARGV[2]  queue name
-- ARGV[3]  now, ms
-- Returns: cfg_reply (see include/queue.lua)
-- Errors: QUEUE_NOT_FOUND; the account's (UNAUTHORIZED, INSUFFICIENT_CREDIT).
--@include queue
--@include account

local qk = target_queue()
local now = to_int(ARGV[3], "now")
local acct = account_open(KEYS[2], ARGV[1], "queue.get", 1)
require_cfg(qk)
local reply = cfg_reply(qk)
account_settle(acct, now)
return reply
