-- wrk script for bench/run's paced runs: each wrk thread sends at a fixed rate (requests per
-- second, the script's one argument, already divided by the number of threads), so that a
-- server is measured at a given load instead of at its maximum.
--   wrk -t2 -c32 -d10s --latency -s bench/paced.lua URL -- RATE_PER_THREAD
-- wrk asks `delay()` (milliseconds, whole: its timers have no finer grain) before each request
-- a connection sends after its first. The thread keeps one schedule of send times, one every
-- 1/RATE s, and gives each request the next free time: the rate holds whatever the latency, as
-- long as there are connections free to send (32 connections cover about 32 x 1/latency req/s).
-- A schedule that fell behind (a stall) sends what it owes at once, up to one second of it:
-- the requests after a stall queue and their latency counts, as it would for a real caller.
-- Latency is measured by wrk from the moment a request is written (not from its slot: wrk2's
-- correction for coordinated omission is not in Debian's wrk).
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clk, bench_timespec *ts);
]]
local ts = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local interval -- ms between two sends of this thread
local next_slot

function init(args)
  local rate = tonumber(args[1])
  if not rate or rate <= 0 then
    error("bench/paced.lua: give the rate per thread (requests per second) after --")
  end
  interval = 1000 / rate
end

function delay()
  local now = now_ms()
  if next_slot == nil or next_slot < now - 1000 then
    next_slot = now
  end
  next_slot = next_slot + interval
  local wait = next_slot - now
  if wait <= 0 then
    return 0
  end
  -- Round to the nearest millisecond: the slots stay exact, so the rate does not drift.
  return math.floor(wait + 0.5)
end
