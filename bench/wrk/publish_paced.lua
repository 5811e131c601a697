-- queue.publish at a fixed rate (open-loop pacing, like wrk2 without its latency correction): each
-- thread owns rate/threads sends per second on a fixed schedule; whichever connection is free takes
-- the next slot, and a late slot is sent at once. Latency is measured from the actual send.
-- Arguments: those of publish.lua plus rate=<requests/s of the whole run> threads=<wrk -t>.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "publish.lua")
local lib = dofile(here .. "lib.lua")

local interval, next_slot

function init_pacing(a)
  interval = tonumber(a.threads) / tonumber(a.rate)
  next_slot = lib.now() + interval * (tid + 1) / tonumber(a.threads)
end

function delay()
  local now = lib.now()
  local slot = next_slot
  next_slot = next_slot + interval
  if slot <= now then return 0 end
  return math.floor((slot - now) * 1000 + 0.5)
end
