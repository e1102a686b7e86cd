#!lua
-- lease_acquire.lua: an outlet claims a shard (docs/redis-layout.md, "Leases").
-- KEYS[1] <prefix>lease, KEYS[2] <prefix>fence.
-- ARGV[1] owner id, ARGV[2] lease time, milliseconds.
-- Returns the new fencing token (an integer that only grows), or nil when the lease is
-- held (by anyone, the caller included: a holder renews instead).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return false
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. token, 'PX', ARGV[2])
return token
