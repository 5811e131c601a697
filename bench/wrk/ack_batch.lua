-- POST /v1/queue/ack_batch of up to `batch` leases per request, read from the files consume.lua wrote
-- (<leases>.0 .. <leases>.<files-1>); thread t of T acks every T-th lease. When a thread has acked all
-- of its leases it counts `spent` and sends GET /healthz (not counted) until the run ends.
-- Arguments: key=<api key> queue=<name> leases=<file prefix> files=<n> threads=<wrk -t> [batch=100]
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local lib = dofile(here .. "lib.lua")
setup, done = lib.setup, lib.done

local leases, next_lease, batch, headers, head, idle

function init(args)
  local a = lib.args(args)
  local threads = tonumber(a.threads)
  batch = tonumber(a.batch or "100")
  headers = lib.headers(a.key)
  head = '{"queue":"' .. a.queue .. '","messages":['
  idle = wrk.format("GET", "/healthz", {})
  leases, next_lease = {}, 1
  local i = 0
  for f = 0, tonumber(a.files) - 1 do
    local file = io.open(a.leases .. "." .. f, "r")
    if file then
      for line in file:lines() do
        if i % threads == tid then
          local id, receipt = string.match(line, "^(%x+) (%S+)$")
          if id then leases[#leases + 1] = '{"message_id":"' .. id .. '","receipt":"' .. receipt .. '"}' end
        end
        i = i + 1
      end
      file:close()
    end
  end
  lib.start()
end

function request()
  if next_lease > #leases then
    if spent == 0 then spent = 1 end
    return idle
  end
  local last = math.min(next_lease + batch - 1, #leases)
  local body = head .. table.concat(leases, ",", next_lease, last) .. "]}"
  next_lease = last + 1
  return wrk.format("POST", "/v1/queue/ack_batch", headers, body)
end

function response(status, headers, body)
  if status ~= 200 then
    bad = bad + 1
    return
  end
  local at = string.find(body, '"acked":[', 1, true)
  if not at then return end
  local list = string.sub(body, at + 9)
  if string.sub(list, 1, 1) == "]" then return end
  local _, commas = string.gsub(list, ",", ",")
  lib.progress(commas + 1)
end
