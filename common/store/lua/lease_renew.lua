#!lua
-- lease_renew.lua: the holder extends its lease (docs/redis-layout.md, "Leases").
-- KEYS[1] <prefix>lease.
-- ARGV[1] "<owner>:<token>" as acquired, ARGV[2] lease time, milliseconds.
-- Returns 1; error FENCED when the lease is not (or no longer) held with that value.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('FENCED lease ' .. KEYS[1] .. ' is not held by ' .. ARGV[1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
