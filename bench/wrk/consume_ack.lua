-- The consumer loop: queue.consume of up to `max` messages, then ack what it got, then consume again.
-- Each connection alternates; an ack is the next request of whichever connection of the thread is free
-- first (wrk gives scripts no connection identity), so every consumed message is acked at once.
--   max=100 (default): ack with POST /v1/queue/ack_batch (one request for the whole consume).
--   max=1 single=1: the single-message work loop, POST /v1/queue/ack per message.
--   max=1 ackon=1: the single-message work loop with each ack carried by the next consume (the `ack` extension
--     of consume): one request per message.
-- Arguments: key=<api key> queue=<name> [max=100] [single=1 | ackon=1] [wait=0 (long poll seconds)]
--            [visibility=60]
-- Counts acked messages as progress.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local lib = dofile(here .. "lib.lua")
setup, done = lib.setup, lib.done

local consume_req, consume_head, headers, queue, single, ackon
local pending = {}
local to_ack = {} -- ackon: ack items for the next consume

function init(args)
  local a = lib.args(args)
  queue = a.queue
  single = a.single == "1"
  ackon = a.ackon == "1"
  headers = lib.headers(a.key)
  consume_head = '{"queue":"' .. queue .. '","max_messages":' .. (a.max or "100") .. ',"visibility_timeout":' ..
    (a.visibility or "60") .. ',"wait_seconds":' .. (a.wait or "0")
  consume_req = wrk.format("POST", "/v1/queue/consume", headers, consume_head .. '}')
  lib.start()
end

function request()
  if ackon and #to_ack > 0 then
    local body = consume_head .. ',"ack":[' .. table.concat(to_ack, ",") .. ']}'
    to_ack = {}
    return wrk.format("POST", "/v1/queue/consume", headers, body)
  end
  local n = #pending
  if n > 0 then
    local r = pending[n]
    pending[n] = nil
    return r
  end
  return consume_req
end

function response(status, headers_, body)
  if status ~= 200 then
    bad = bad + 1
    return
  end
  if string.sub(body, 1, 12) == '{"messages":' then
    if ackon then
      local at = string.find(body, '"acked":[', 1, true)
      if at then
        local list = string.sub(body, at + 9)
        if string.sub(list, 1, 1) ~= "]" then
          local _, commas = string.gsub(string.sub(list, 1, string.find(list, "]", 1, true)), ",", ",")
          lib.progress(commas + 1)
        end
      end
      local got = false
      for id, receipt in string.gmatch(body, '"message_id":"(%x+)".-"receipt":"([^"]+)"') do
        to_ack[#to_ack + 1] = '{"message_id":"' .. id .. '","receipt":"' .. receipt .. '"}'
        got = true
      end
      if not got then empty = empty + 1 end
      return
    end
    local items = {}
    for id, receipt in string.gmatch(body, '"message_id":"(%x+)".-"receipt":"([^"]+)"') do
      if single then
        pending[#pending + 1] = wrk.format("POST", "/v1/queue/ack", headers,
          '{"queue":"' .. queue .. '","message_id":"' .. id .. '","receipt":"' .. receipt .. '"}')
      else
        items[#items + 1] = '{"message_id":"' .. id .. '","receipt":"' .. receipt .. '"}'
      end
    end
    if #items > 0 then
      pending[#pending + 1] = wrk.format("POST", "/v1/queue/ack_batch", headers,
        '{"queue":"' .. queue .. '","messages":[' .. table.concat(items, ",") .. "]}")
    elseif string.find(body, '"messages":[]', 1, true) then
      empty = empty + 1
    end
    return
  end
  if single then
    lib.progress(1)
    return
  end
  local at = string.find(body, '"acked":[', 1, true)
  if not at then return end
  local list = string.sub(body, at + 9)
  if string.sub(list, 1, 1) == "]" then return end
  local _, commas = string.gsub(list, ",", ",")
  lib.progress(commas + 1)
end
