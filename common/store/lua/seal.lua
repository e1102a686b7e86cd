#!lua
-- seal.lua: an outlet closes the due windows of a shard it holds (docs/redis-layout.md,
-- "Shard protocol"; RELIABILITY.md §3.3 outlet step 2). Fenced.
--
-- KEYS[1] <prefix>lease, KEYS[2] <prefix>pending, KEYS[3] <prefix>sealed_index.
-- ARGV[1] <prefix>, ARGV[2] "<owner>:<token>", ARGV[3] at most this many windows sealed
-- (and this many reported ready), ARGV[4] TTL of the sealed:<close> markers, seconds,
-- ARGV[5] write allowance, seconds: a window is due once close + allowance <= TIME.
-- Returns {sealed, ready, expired}, three arrays of close times (strings):
--   sealed   windows this call sealed: pts:<close> renamed to proc:<close>;
--   ready    windows sealed and not acked (this call's and older ones, e.g. left by a
--            holder that died), oldest first: the caller's work;
--   expired  windows whose records expired (window TTL) before being acked: lost.
-- Error FENCED when the lease is not held with ARGV[2].
if redis.call('GET', KEYS[1]) ~= ARGV[2] then
  return redis.error_reply('FENCED lease ' .. KEYS[1] .. ' is not held by ' .. ARGV[2])
end
local prefix = ARGV[1]
local limit = tonumber(ARGV[3])
local now = tonumber(redis.call('TIME')[1]) - tonumber(ARGV[5])

local sealed, ready, expired = {}, {}, {}
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)
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
return {sealed, ready, expired}
