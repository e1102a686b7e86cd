#!lua
-- mark_sent.lua: the holder records tenants of a sealed window whose gauges the API
-- accepted (or rejected for good, or gave up on), so a re-emission skips them, and in the
-- same step appends a dead letter for each request it gave up on (docs/redis-layout.md,
-- "Shard protocol"; RELIABILITY.md §3.3 outlet steps 4-5). Fenced.
-- KEYS[1] <prefix>lease.
-- ARGV[1] <prefix>, ARGV[2] "<owner>:<token>", ARGV[3] close time, ARGV[4] TTL of the
-- sent:<close> set, seconds; ARGV[5] approximate MAXLEN of <prefix>dlq; ARGV[6] tenant
-- count T, ARGV[7..6+T] tenants; then dead letters, 6 fields each: tenant, HTTP status
-- (0: transport), reason (rejected | expired), gauges, payload sha256 (hex), detail.
-- Returns how many tenants were not yet in the set. Error FENCED as in seal.lua.
if redis.call('GET', KEYS[1]) ~= ARGV[2] then
  return redis.error_reply('FENCED lease ' .. KEYS[1] .. ' is not held by ' .. ARGV[2])
end
local prefix, close = ARGV[1], ARGV[3]
local tenant_count = tonumber(ARGV[6])
local key = prefix .. 'sent:' .. close
local added = 0
for i = 7, 6 + tenant_count do
  added = added + redis.call('SADD', key, ARGV[i])
end
redis.call('EXPIRE', key, ARGV[4])
for i = 7 + tenant_count, #ARGV, 6 do
  redis.call('XADD', prefix .. 'dlq', 'MAXLEN', '~', ARGV[5], '*',
             'tenant', ARGV[i], 'close', close, 'status', ARGV[i + 1], 'reason', ARGV[i + 2],
             'gauges', ARGV[i + 3], 'payload_sha256', ARGV[i + 4], 'detail', ARGV[i + 5])
end
return added
