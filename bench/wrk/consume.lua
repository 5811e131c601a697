-- queue.consume of up to `max` messages per request, without acking: every lease is written as
-- "<message_id> <receipt>" to <leases>.<thread index> for ack_batch.lua to settle later.
-- Arguments: key=<api key> queue=<name> leases=<file prefix> [max=100] [visibility=3600]
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local lib = dofile(here .. "lib.lua")
setup, done = lib.setup, lib.done

local req, out

function init(args)
  local a = lib.args(args)
  local body = '{"queue":"' .. a.queue .. '","max_messages":' .. (a.max or "100") ..
    ',"visibility_timeout":' .. (a.visibility or "3600") .. '}'
  req = wrk.format("POST", "/v1/queue/consume", lib.headers(a.key), body)
  out = assert(io.open(a.leases .. "." .. tid, "w"))
  lib.start()
end

function request()
  return req
end

function response(status, headers, body)
  if status ~= 200 then
    bad = bad + 1
    return
  end
  local n = 0
  for id, receipt in string.gmatch(body, '"message_id":"(%x+)".-"receipt":"([^"]+)"') do
    out:write(id, " ", receipt, "\n")
    n = n + 1
  end
  if n == 0 then empty = empty + 1 else lib.progress(n) end
  out:flush()
end
