-- extend: move a lease's deadline (extension: POST /v1/queue/extend, a consumer's heartbeat).
--
-- KEYS[1]  hash    cfg of the queue (its other keys are derived with queue_keys, same hash tag)
-- KEYS[2]  hash    the project's account (lua/include/account.lua)
-- ARGV[1]  project tag (v1:{P})
-- ARGV[2]  queue name
-- ARGV[3]  now, ms
-- ARGV[4]  message id
-- ARGV[5]  receipt, "" = any current lease
-- ARGV[6]  new visibility from now, ms
-- Returns: {message_id, receipt, lease_deadline_ms}
-- Errors: QUEUE_NOT_FOUND, MESSAGE_NOT_FOUND, LEASE_EXPIRED; the account's (UNAUTHORIZED, INSUFFICIENT_CREDIT).
--@include lifecycle
--@include lease
--@include account

local qk = target_queue()
local now = to_int(ARGV[3], "now")
local cfg = require_cfg(qk)
local acct = account_open(KEYS[2], ARGV[1], "queue.extend", 1)
local id = ARGV[4]
local visibility_ms = to_int(ARGV[6], "visibility", 0)
local m = leased_message(qk, cfg, id, ARGV[5], now, "message_id")
local deadline = now + visibility_ms
hold(qk, id, m, deadline)
account_settle(acct, now)
return {id, receipt_of(cfg.rkey, id, m), deadline}
