#!lua
-- seal.lua: an outlet closes the due windows of a shard it holds (docs/redis-layout.md,
-- "Shard protocol" and "Receivers' watermarks"; RELIABILITY.md §3.3 outlet step 2). Fenced.
--
-- KEYS[1] <prefix>lease, KEYS[2] <prefix>pending, KEYS[3] <prefix>sealed_index.
-- ARGV[1] <prefix>, ARGV[2] "<owner>:<token>", ARGV[3] at most this many windows sealed
-- (and this many reported ready), ARGV[4] TTL of the sealed:<close> markers, seconds,
-- ARGV[5] write allowance, seconds: a window is due once close + allowance <= TIME,
-- ARGV[6] the receivers' watermarks hash (dm:wm), ARGV[7] their expiry zset (dm:wm_exp):
-- global keys of this server, not of the shard (servers are plain Redis, not Cluster).
-- Entries of wm_exp whose expiry (ms) is before TIME are removed from both first; while at
-- least one live entry remains, a window is also due once close * 1000 <= the smallest
-- live watermark (ms): every live receiver has written or failed every request it
-- accepted before the close.
-- Returns {sealed, ready, expired, early}: three arrays of close times (strings) and a number:
--   sealed   windows this call sealed: pts:<close> renamed to proc:<close>;
--   ready    windows sealed and not acked (this call's and older ones, e.g. left by a
--            holder that died), oldest first: the caller's work;
--   expired  windows whose records expired (window TTL) before being acked: lost;
--   early    how many of `sealed` were due by the watermarks only (before the allowance).
-- Error FENCED when the lease is not held with ARGV[2].
if redis.call('GET', KEYS[1]) ~= ARGV[2] then
  return redis.error_reply('FENCED lease ' .. KEYS[1] .. ' is not held by ' .. ARGV[2])
end
local prefix = ARGV[1]
local limit = tonumber(ARGV[3])
local time = redis.call('TIME')
local by_allowance = tonumber(time[1]) - tonumber(ARGV[5])
local due_until = by_allowance

if ARGV[6] ~= nil and ARGV[6] ~= '' then
  local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  local gone = redis.call('ZRANGEBYSCORE', ARGV[7], '-inf', '(' .. now_ms)
  if #gone > 0 then
    redis.call('HDEL', ARGV[6], unpack(gone))
    redis.call('ZREM', ARGV[7], unpack(gone))
  end
  local marks = redis.call('HVALS', ARGV[6])
  if #marks > 0 then
    local least = nil
    for _, mark in ipairs(marks) do
      local ms = tonumber(mark) or 0
      if least == nil or ms < least then least = ms end
    end
    local by_watermark = math.floor(least / 1000)
    if by_watermark > due_until then due_until = by_watermark end
  end
end

local sealed, ready, expired = {}, {}, {}
local early = 0
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', due_until, 'LIMIT', 0, limit)
for _, close in ipairs(due) do
  redis.call('SET', prefix .. 'sealed:' .. close, '1', 'EX', ARGV[4])
  local pts = prefix .. 'pts:' .. close
  if redis.call('EXISTS', pts) == 0 then
    redis.call('ZREM', KEYS[2], close)
    expired[#expired + 1] = close
  elseif redis.call('RENAMENX', pts, prefix .. 'proc:' .. close) == 1 then
    redis.call('ZADD', KEYS[3], close, close)
    redis.call('ZREM', KEYS[2], close)
    sealed[#sealed + 1] = close
    if tonumber(close) > by_allowance then early = early + 1 end
  end
  -- RENAMENX fails only if proc:<close> is still unacked and records for the same close
  -- arrived after it was sealed, which the sealed marker and Redis TIME prevent; the
  -- window then stays pending and is sealed again after that ack, never overwritten.
end

for _, close in ipairs(redis.call('ZRANGE', KEYS[3], 0, limit - 1)) do
  if redis.call('EXISTS', prefix .. 'proc:' .. close) == 1 then
    ready[#ready + 1] = close
  else
    redis.call('ZREM', KEYS[3], close)
    expired[#expired + 1] = close
  end
end
return {sealed, ready, expired, early}
