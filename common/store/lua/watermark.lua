#!lua
-- watermark.lua: a receiver publishes (or withdraws) its watermark on one Redis server
-- (docs/redis-layout.md, "Receivers' watermarks"). Not per shard: one entry per receiver.
--
-- KEYS[1] dm:wm (hash: receiver id -> watermark, this server's TIME in ms),
-- KEYS[2] dm:wm_exp (zset: receiver id, score = expiry, this server's TIME in ms).
-- ARGV[1] the receiver id ("<host>:<pid>:<random>"),
-- ARGV[2] "set" or "del",
-- ARGV[3] the watermark, ms on this server's clock: every request the receiver accepted
--         before it is written or failed (0: unknown, blocks early sealing) ("set" only),
-- ARGV[4] the entry's lifetime, ms ("set" only).
-- Returns 1.
if ARGV[2] == 'del' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 1
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[2], now_ms + tonumber(ARGV[4]), ARGV[1])
return 1
