--@include queue
--@include message
-- State moves shared by the message scripts. Each keeps the invariant that a message id is in exactly
-- one of: avail/delayed (waiting; FIFO also in gq), inflight, dead (own dead-letter area), or gone.

local function notify(qk)
  redis.call("PUBLISH", notify_channel(qk.tag), qk.name)
end

-- FIFO: a group is ready (in "groups", scored by its head's due time) when nothing of it is in flight
-- and it has a waiting message.
local function fifo_refresh(qk, group)
  local busy = tonumber(redis.call("HGET", qk.gbusy, group) or "0")
  if busy > 0 then
    redis.call("ZREM", qk.groups, group)
    return
  end
  local head = redis.call("ZRANGEBYLEX", qk.gq, "[" .. group .. "\0", "[" .. group .. "\0\255", "LIMIT", 0, 1)
  if #head == 0 then
    redis.call("ZREM", qk.groups, group)
    return
  end
  local m = msg_get(qk, fifo_member_id(head[1]))
  redis.call("ZADD", qk.groups, m[F_DUE], group)
end

-- Put a message (already stored in msgs) into the waiting structures; it is due at m[F_DUE].
local function enqueue(qk, cfg, id, m, now)
  if m[F_DUE] > now then
    redis.call("ZADD", qk.delayed, m[F_DUE], id)
  else
    redis.call("ZADD", qk.avail, avail_score(cfg, m), id)
  end
  if cfg.fifo then
    redis.call("ZADD", qk.gq, 0, fifo_member(m, id))
    fifo_refresh(qk, group_of(m))
  end
end

-- Take a waiting message out of avail/delayed (and the FIFO line); the caller refreshes its group.
local function leave_waiting(qk, cfg, id, m)
  redis.call("ZREM", qk.avail, id)
  redis.call("ZREM", qk.delayed, id)
  if cfg.fifo then redis.call("ZREM", qk.gq, fifo_member(m, id)) end
end

-- Take a message out of flight; returns true when it was in flight.
local function leave_inflight(qk, cfg, id, m)
  if redis.call("ZREM", qk.inflight, id) == 0 then return false end
  if cfg.fifo and redis.call("HINCRBY", qk.gbusy, group_of(m), -1) <= 0 then
    redis.call("HDEL", qk.gbusy, group_of(m))
  end
  return true
end

-- A message held here as another queue's dead letter stops being listed there.
local function unindex_foreign(qk, id, m)
  local source = m[F_SOURCE]
  if source and source ~= qk.name and redis.call("SREM", qk.foreign, id) == 1 then
    redis.call("ZREM", queue_key(qk.tag, source, "dlqidx"), qk.name .. "\0" .. id)
  end
end

-- Move a message, already out of every waiting and in-flight structure, to the dead letters of qk.
local function dead_letter(qk, cfg, id, m, reason, now)
  unindex_foreign(qk, id, m)
  m[F_DEAD] = now
  m[F_REASON] = reason
  m[F_SOURCE] = qk.name
  local dk, dcfg = nil, nil
  if cfg.dlq ~= "" then
    dk = queue_keys(qk.tag, cfg.dlq)
    dcfg = load_cfg(dk)
  end
  if dcfg then
    redis.call("HDEL", qk.msgs, id)
    redis.call("ZREM", qk.expiry, id)
    m[F_ATTEMPTS] = 0
    m[F_DUE] = now
    msg_put(dk, id, m)
    redis.call("SADD", dk.foreign, id)
    redis.call("ZADD", dk.expiry, m[F_ENQUEUED] + dcfg.retention_ms, id)
    enqueue(dk, dcfg, id, m, now)
    notify(dk)
    redis.call("ZADD", qk.dlqidx, now, cfg.dlq .. "\0" .. id)
  else
    msg_put(qk, id, m)
    redis.call("ZADD", qk.dead, now, id)
    redis.call("ZADD", qk.dlqidx, now, qk.name .. "\0" .. id)
  end
end

-- A failed delivery of a message that just left flight: retry (due at `due`) or dead-letter.
-- Returns true when the message was requeued.
local function fail_delivery(qk, cfg, id, m, now, due, requeue, reason)
  local requeued = false
  if not requeue then
    dead_letter(qk, cfg, id, m, reason or "nack", now)
  elseif m[F_ATTEMPTS] >= 1 + cfg.max_retries then
    dead_letter(qk, cfg, id, m, "max_retries", now)
  else
    m[F_DUE] = due
    msg_put(qk, id, m)
    enqueue(qk, cfg, id, m, now)
    if due <= now then notify(qk) end
    requeued = true
  end
  if cfg.fifo then fifo_refresh(qk, group_of(m)) end
  return requeued
end

-- Delete a message wherever it is in qk (retention, purge).
local function remove_message(qk, cfg, id, m)
  leave_waiting(qk, cfg, id, m)
  leave_inflight(qk, cfg, id, m)
  if redis.call("ZREM", qk.dead, id) == 1 then
    redis.call("ZREM", qk.dlqidx, qk.name .. "\0" .. id)
  end
  unindex_foreign(qk, id, m)
  redis.call("HDEL", qk.msgs, id)
  redis.call("ZREM", qk.expiry, id)
  if cfg.fifo then fifo_refresh(qk, group_of(m)) end
end

-- Bounded maintenance, safe to run from any number of callers: retention, lease expiry, due delays.
-- Returns the number of messages moved.
local function maintain(qk, cfg, now, limit)
  local moved = 0
  for _, id in ipairs(redis.call("ZRANGEBYSCORE", qk.expiry, "-inf", now, "LIMIT", 0, limit)) do
    local m = msg_get(qk, id)
    if m then remove_message(qk, cfg, id, m) else redis.call("ZREM", qk.expiry, id) end
    moved = moved + 1
  end
  local expired = redis.call("ZRANGEBYSCORE", qk.inflight, "-inf", now, "WITHSCORES", "LIMIT", 0, limit)
  for i = 1, #expired, 2 do
    local id, deadline = expired[i], tonumber(expired[i + 1])
    local m = msg_get(qk, id)
    if m then
      leave_inflight(qk, cfg, id, m)
      fail_delivery(qk, cfg, id, m, now, deadline, true)
    else
      redis.call("ZREM", qk.inflight, id)
    end
    moved = moved + 1
  end
  local due = redis.call("ZRANGEBYSCORE", qk.delayed, "-inf", now, "LIMIT", 0, limit)
  for _, id in ipairs(due) do
    local m = msg_get(qk, id)
    redis.call("ZREM", qk.delayed, id)
    if m then redis.call("ZADD", qk.avail, avail_score(cfg, m), id) end
    moved = moved + 1
  end
  if #due > 0 then notify(qk) end
  return moved
end

-- Maintenance of a queue and of its named dead-letter queue: the dead letters of qk waiting there are
-- listed and counted with qk, so a lease ending there (or their retention) must apply first.
local function maintain_with_dlq(qk, cfg, now, limit)
  local moved = maintain(qk, cfg, now, limit)
  if cfg.dlq ~= "" then
    local dk = queue_keys(qk.tag, cfg.dlq)
    local dcfg = load_cfg(dk)
    if dcfg then moved = moved + maintain(dk, dcfg, now, limit) end
  end
  return moved
end
