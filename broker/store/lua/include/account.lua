-- Project accounts (docs/admin.md): credit, limits and prices in the project's account hash
-- (v1:{P}:account, fields credit, disabled, usage_days, max_queues, max_messages, max_payload_bytes and
-- price:<capability>), and the usage of each UTC day (usage_key: "<capability>:<kind>" -> count).
--
-- A charged script calls account_open first, before its first write, with the account hash as one of its
-- KEYS: it refuses a disabled project and a call whose price is above the credit. The checks of the
-- project's limits follow (account_limit, account_payloads, account_admit_messages), still before the
-- first write; after the operation succeeded, account_settle debits the price and counts the call and
-- account_meter the messages it moved. Check, operation and debit are then one atomic step: concurrent
-- calls cannot overdraw the credit, and a refused or failed call costs nothing and meters nothing.
-- A project whose hash has no credit field is unlimited: nothing is debited (it is still metered). Every
-- project with a key has an account (broker/store/accounts.py open_account); one without (its keys only in
-- BROKER_API_KEYS of an API not started by `broker serve`) is neither charged, limited nor metered.
--@include errors
--@include keys

-- Days a day's usage is kept when the account does not say (its usage_days field).
local USAGE_DEFAULT_DAYS = 90

local ACCOUNT_DAY_MS = 86400000

-- The account of a call of `capability` from the fields `f` account_open reads (`price` the capability's
-- price field); the errors of account_open.
local function account_of(f, key, tag, charged, capability, price, units)
  if not f[1] then return {charged = false, price = 0} end -- no account: not metered either (acct.tag nil)
  local acct = {key = key, tag = tag, capability = capability, charged = charged, price = 0,
    days = tonumber(f[4]) or USAGE_DEFAULT_DAYS, max_queues = tonumber(f[6]), max_messages = tonumber(f[7]),
    max_payload_bytes = tonumber(f[8])}
  if not charged then return acct end
  if f[3] == "1" then fail("UNAUTHORIZED", "the project is disabled") end
  if f[2] then
    local credit = tonumber(f[2]) or 0
    local cost = (tonumber(price) or 1) * units
    if cost > credit then
      fail("INSUFFICIENT_CREDIT", string.format("this call costs %d and the project's credit is %d", cost, credit))
    end
    acct.price = cost
    acct.credit = credit
  end
  return acct
end

-- The account of a call of `capability` that costs `units` times the capability's price (default 1).
-- `key` is the account hash, or the project tag for a call that is not charged (the later attempts of a
-- long poll): then nothing is checked or debited, only the messages moved are metered.
-- Errors: UNAUTHORIZED (the project is disabled), INSUFFICIENT_CREDIT.
local function account_open(key, tag, capability, units)
  local charged = key ~= tag
  if not charged then key = account_key(tag) end
  local f = redis.call("HMGET", key, "created_ms", "credit", "disabled", "usage_days", "price:" .. capability,
    "max_queues", "max_messages", "max_payload_bytes")
  return account_of(f, key, tag, charged, capability, f[5], units)
end

-- account_open for a call priced as several capabilities (consume's acks, queue.ack_batch, and nacks,
-- queue.nack per item), with one read of the account: the call's account as account_open has it, and one
-- for each {capability, units} of `also` (each counted as `units` calls of it when settled), refused with
-- INSUFFICIENT_CREDIT also when the prices together are above the credit. account_settle(first, now, others)
-- settles them all.
local function account_open_many(key, tag, capability, units, also)
  local charged = key ~= tag
  if not charged then key = account_key(tag) end
  local fields = {"created_ms", "credit", "disabled", "usage_days", "price:" .. capability, "max_queues",
    "max_messages", "max_payload_bytes"}
  for i, extra in ipairs(also) do fields[8 + i] = "price:" .. extra[1] end
  local f = redis.call("HMGET", key, unpack(fields))
  local first = account_of(f, key, tag, charged, capability, f[5], units)
  local others, total = {}, first.price
  for i, extra in ipairs(also) do
    local acct = account_of(f, key, tag, charged, extra[1], f[8 + i], extra[2])
    acct.calls = extra[2]
    others[i] = acct
    total = total + acct.price
  end
  if first.credit and total > first.credit then
    fail("INSUFFICIENT_CREDIT", string.format("this call costs %d and the project's credit is %d", total,
      first.credit))
  end
  return first, others
end

-- Refuse when `count` (what there would be after the call) is above the account's limit `name`.
local function account_limit(acct, name, count)
  local limit = acct[name]
  if limit and count > limit then
    fail("QUOTA_EXCEEDED", string.format("the project's limit %s is %d; this call would make it %d", name, limit,
      count))
  end
end

-- Refuse when one of the payloads argv[first .. first + n - 1] is longer than max_payload_bytes.
local function account_payloads(acct, argv, first, n, field_of)
  local limit = acct.max_payload_bytes
  if not limit then return end
  for i = 1, n do
    local size = #argv[first + i - 1]
    if size > limit then
      fail("QUOTA_EXCEEDED", string.format("the project's limit max_payload_bytes is %d; this payload is %d bytes",
        limit, size), field_of(i, "payload"))
    end
  end
end

-- Refuse when storing `adding` more messages would put the project above max_messages (the messages
-- stored in all its queues, in any state; counted only when the limit is set: one HLEN per queue).
local function account_admit_messages(acct, adding)
  if not acct.max_messages or adding == 0 then return end
  local stored = 0
  for _, name in ipairs(redis.call("ZRANGE", queue_index_key(acct.tag), "0", "-1")) do
    stored = stored + redis.call("HLEN", queue_key(acct.tag, name, "msgs"))
  end
  account_limit(acct, "max_messages", stored + adding)
end

-- Add `n` to the usage of kind `kind` (calls, published, delivered, pushed, bytes) of the account's
-- capability on the UTC day of `now`; the day's hash expires `days` days after the day ends.
local function account_meter(acct, now, kind, n)
  if n == 0 or not acct.tag then return end
  local key = acct.usage
  if not key then
    acct.day = math.floor(now / ACCOUNT_DAY_MS)
    key = usage_key(acct.tag, acct.day)
    acct.usage = key
  end
  if redis.call("HINCRBY", key, acct.capability .. ":" .. kind, string.format("%d", n)) == n then
    redis.call("EXPIREAT", key, string.format("%d", (acct.day + 1 + acct.days) * 86400))
  end
end

-- The call succeeded: debit its price and count it; `others` (optional) the other accounts of
-- account_open_many, debited with the same write and counted too.
local function account_settle(acct, now, others)
  if not acct.charged then return end
  local price = acct.price
  for _, other in ipairs(others or {}) do price = price + other.price end
  if price > 0 then redis.call("HINCRBY", acct.key, "credit", string.format("%d", -price)) end
  account_meter(acct, now, "calls", 1)
  for _, other in ipairs(others or {}) do account_meter(other, now, "calls", other.calls) end
end
