#!lua
-- ingest.lua: a receiver's atomic write to one or more shards of one server
-- (docs/redis-layout.md, "Shard protocol"; RELIABILITY.md §3.3 receiver step 4). One call
-- carries, per shard, one or more drain requests, each with its frame id and its records
-- for that shard. A receiver's flush makes one call per server: one script run, one AOF
-- write and fsync, and one reply, where a call per shard made as many of each.
--
-- The "#!lua" shebang (Redis 7 script flags) makes Redis refuse the whole call up front
-- with -OOM when it is over maxmemory, instead of failing half-way through.
--
-- KEYS[s]  <prefix of shard s>pending (zset of window close times), declared for routing.
-- ARGV[1]  de-duplication TTL, seconds.
-- ARGV[2]  window TTL, seconds after the close time (safety net for lists never sealed).
-- ARGV[3]  write allowance, seconds: a record is late once close + allowance <= TIME or its
--          window is sealed (the receiver judged lateness at receipt; the allowance covers
--          its flush interval and write).
-- ARGV[4]  number of shards S (= #KEYS); then per shard, in the order of KEYS:
--          <prefix>, "dm:{s<shard>}:" (every key of the shard used below starts with it),
--          number of requests R, then per request:
--          frame count f (>= 1), then f pairs (tenant, frame id; "" = no de-duplication),
--          record count n, then n pairs (close time in unix seconds, record bytes).
--          A request with several frames is the merge of several drain requests (a
--          receiver's flush): its frames share the records' fate, all or nothing.
-- Returns S arrays, one per shard in order, each of R arrays {applied, late, duplicate
-- (0|1)} in request order. duplicate = 1: one of the request's frames was already applied
-- to that shard; nothing of the request was, on that shard.
local dedupe_ttl = ARGV[1]
local window_ttl = tonumber(ARGV[2])
local shard_count = tonumber(ARGV[4])
local now = tonumber(redis.call('TIME')[1]) - tonumber(ARGV[3])

local shards = {}
local at = 5
for s = 1, shard_count do
  local prefix = ARGV[at]
  local request_count = tonumber(ARGV[at + 1])
  at = at + 2
  local results = {}
  local appended = {}  -- close -> the records this call appends to the shard's pts:<close>, in order
  local sealed = {}    -- close -> whether sealed:<close> exists (one EXISTS per close)
  for r = 1, request_count do
    local frame_count = tonumber(ARGV[at])
    local frames_at = at + 1
    at = frames_at + 2 * frame_count
    local count = tonumber(ARGV[at])
    at = at + 1
    local duplicate = 0
    for f = 0, frame_count - 1 do
      local frame = ARGV[frames_at + 2 * f + 1]
      if frame ~= '' and
          redis.call('EXISTS', prefix .. 'dedupe:' .. ARGV[frames_at + 2 * f] .. ':' .. frame) == 1 then
        duplicate = 1
        break
      end
    end
    if duplicate == 0 then
      for f = 0, frame_count - 1 do
        local frame = ARGV[frames_at + 2 * f + 1]
        if frame ~= '' then
          redis.call('SET', prefix .. 'dedupe:' .. ARGV[frames_at + 2 * f] .. ':' .. frame, '1', 'EX', dedupe_ttl)
        end
      end
    end
    local applied, late = 0, 0
    if duplicate == 0 then
      for k = 0, count - 1 do
        local close = ARGV[at + 2 * k]
        local closed = tonumber(close) <= now
        if not closed then
          closed = sealed[close]
          if closed == nil then
            closed = redis.call('EXISTS', prefix .. 'sealed:' .. close) == 1
            sealed[close] = closed
          end
        end
        if closed then
          late = late + 1
        else
          local records = appended[close]
          if records == nil then
            records = {}
            appended[close] = records
          end
          records[#records + 1] = ARGV[at + 2 * k + 1]
          applied = applied + 1
        end
      end
    end
    at = at + 2 * count
    results[r] = {applied, late, duplicate}
  end

  -- One RPUSH per list and per 1000 records rather than one per record: a command called
  -- from Lua costs far more than its arguments (and each is a command of the AOF).
  -- Nothing above reads the lists, so appending at the end is the same as appending
  -- in the loop; the order of the records is kept.
  for close, records in pairs(appended) do
    local pts = prefix .. 'pts:' .. close
    for first = 1, #records, 1000 do
      redis.call('RPUSH', pts, unpack(records, first, math.min(first + 999, #records)))
    end
    redis.call('ZADD', KEYS[s], close, close)
    redis.call('EXPIREAT', pts, tonumber(close) + window_ttl)
  end
  shards[s] = results
end
return shards
