-- queue.publish_batch of `batch` messages per request (default 100).
-- Arguments: key=<api key> queue=<name> payload=<file with compact JSON> [batch=100] [priorities=1]
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local lib = dofile(here .. "lib.lua")
setup, done = lib.setup, lib.done

local req

function init(args)
  local a = lib.args(args)
  local payload = lib.read(a.payload)
  local n = tonumber(a.batch or "100")
  math.randomseed(tid + 1)
  local items = {}
  for i = 1, n do
    if a.priorities == "1" then
      items[i] = '{"payload":' .. payload .. ',"priority":' .. math.random(0, 9) .. '}'
    else
      items[i] = '{"payload":' .. payload .. '}'
    end
  end
  local body = '{"queue":"' .. a.queue .. '","messages":[' .. table.concat(items, ",") .. ']}'
  req = wrk.format("POST", "/v1/queue/publish_batch", lib.headers(a.key), body)
  lib.start()
end

function request()
  return req
end
