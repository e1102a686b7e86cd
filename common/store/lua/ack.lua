#!lua
-- ack.lua: the holder deletes a window whose every tenant was sent (docs/redis-layout.md,
-- "Shard protocol"; RELIABILITY.md §3.3 outlet step 5). Fenced; idempotent.
-- KEYS[1] <prefix>lease, KEYS[2] <prefix>sealed_index.
-- ARGV[1] <prefix>, ARGV[2] "<owner>:<token>", ARGV[3] close time, ARGV[4] TTL of the
-- done:<close> marker, seconds.
-- Returns 1 when the window was still there, 0 when it was already acked.
-- Error FENCED as in seal.lua.
if redis.call('GET', KEYS[1]) ~= ARGV[2] then
  return redis.error_reply('FENCED lease ' .. KEYS[1] .. ' is not held by ' .. ARGV[2])
end
local prefix, close = ARGV[1], ARGV[3]
local existed = redis.call('DEL', prefix .. 'proc:' .. close)
redis.call('DEL', prefix .. 'sent:' .. close)
local indexed = redis.call('ZREM', KEYS[2], close)
redis.call('SET', prefix .. 'done:' .. close, '1', 'EX', ARGV[4])
if existed + indexed > 0 then
  return 1
end
return 0
