#!lua
-- lease_release.lua: the holder gives its lease up (docs/redis-layout.md, "Leases").
-- KEYS[1] <prefix>lease.
-- ARGV[1] "<owner>:<token>" as acquired.
-- Returns 1 when deleted, 0 when the lease was not held with that value (expired or
-- taken over): releasing is best effort and never an error.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
