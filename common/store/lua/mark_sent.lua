#!lua
-- mark_sent.lua: the holder records tenants of a sealed window whose gauges the API
-- accepted (or rejected for good), so a re-emission skips them (docs/redis-layout.md,
-- "Shard protocol"; RELIABILITY.md §3.3 outlet step 4). Fenced.
-- KEYS[1] <prefix>lease.
-- ARGV[1] <prefix>, ARGV[2] "<owner>:<token>", ARGV[3] close time, ARGV[4] TTL of the
-- sent:<close> set, seconds; ARGV[5..] tenants.
-- Returns how many tenants were not yet in the set. Error FENCED as in seal.lua.
if redis.call('GET', KEYS[1]) ~= ARGV[2] then
  return redis.error_reply('FENCED lease ' .. KEYS[1] .. ' is not held by ' .. ARGV[2])
end
local key = ARGV[1] .. 'sent:' .. ARGV[3]
local added = 0
for i = 5, #ARGV do
  added = added + redis.call('SADD', key, ARGV[i])
end
redis.call('EXPIRE', key, ARGV[4])
return added
