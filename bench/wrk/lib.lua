-- Shared helpers of the wrk scripts: script arguments, a monotonic clock, per-thread counters, and the
-- one result line ("BENCH_RESULT {json}") that the Python harness parses.
--
-- Scripts load this file with dofile(<their own directory> .. "lib.lua") and take arguments after
-- wrk's "--" as key=value pairs. Counters are globals of each thread's Lua state:
--   msgs    messages that made progress (published, leased, acked)
--   bad     responses with a status other than 200
--   empty   consume responses with no message (the queue was drained)
--   spent   an ack script ran out of leases to ack
--   t_start, t_last   monotonic seconds of the thread's start and of its last progress
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]

local M = {}
local ts = ffi.new("bench_timespec")
local CLOCK_MONOTONIC = 1

function M.now()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9
end

function M.args(list)
  local a = {}
  for _, item in ipairs(list) do
    local k, v = string.match(item, "^([%w_]+)=(.*)$")
    if k then a[k] = v end
  end
  return a
end

function M.read(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  return (string.gsub(text, "%s+$", ""))
end

function M.headers(key)
  return {["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json"}
end

-- Per-thread state (these run in each thread's Lua state).
msgs, bad, empty, spent, t_start, t_last = 0, 0, 0, 0, 0, 0

function M.start()
  t_start = M.now()
  t_last = t_start
end

function M.progress(n)
  msgs = msgs + n
  t_last = M.now()
end

-- Main-state side: remember the threads, give each its index, and sum their counters at the end.
local threads = {}

function M.setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function M.done(summary, latency, requests)
  local total = {msgs = 0, bad = 0, empty = 0, spent = 0}
  local first, last = nil, 0
  for _, t in ipairs(threads) do
    for k, _ in pairs(total) do total[k] = total[k] + (t:get(k) or 0) end
    local s, l = t:get("t_start") or 0, t:get("t_last") or 0
    if s > 0 and (first == nil or s < first) then first = s end
    if l > last then last = l end
  end
  local active = 0
  if first then active = last - first end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"msgs":%d,"bad":%d,"empty":%d,"spent":%d,"active_s":%.6f,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d}}\n',
    summary.requests, summary.duration, total.msgs, total.bad, total.empty, total.spent, active,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end

return M
