-- queue.publish of one message per request.
-- Arguments: key=<api key> queue=<name> payload=<file with compact JSON> [priorities=1 (random 0..9)]
--            [rate=<requests/s of the whole run> threads=<wrk -t>]: paced mode (see publish_paced.lua).
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local lib = dofile(here .. "lib.lua")
setup, done = lib.setup, lib.done

local fixed, head, tail, headers, random_priority

function init(args)
  local a = lib.args(args)
  headers = lib.headers(a.key)
  local payload = lib.read(a.payload)
  random_priority = a.priorities == "1"
  head = '{"queue":"' .. a.queue .. '","payload":' .. payload
  tail = "}"
  fixed = wrk.format("POST", "/v1/queue/publish", headers, head .. tail)
  math.randomseed(tid + 1)
  lib.start()
  if init_pacing then init_pacing(a) end
end

function request()
  if random_priority then
    return wrk.format("POST", "/v1/queue/publish", headers, head .. ',"priority":' .. math.random(0, 9) .. tail)
  end
  return fixed
end
