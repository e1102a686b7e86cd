#include "common/store/redis_store.h"

#include <charconv>
#include <iterator>
#include <limits>
#include <map>
#include <string>
#include <utility>

#include "common/base/strings.h"
#include "common/bucket/codec.h"
#include "common/bucket/shard.h"

namespace drainmet::store {

struct RedisStore::Pool {
  std::mutex mu;
  std::vector<std::unique_ptr<RedisClient>> idle;  // guarded by mu
};

ShardWindow ShardWindowOf(const bucket::BucketKey& key, const RedisStoreOptions& options) {
  return ShardWindow{bucket::ShardOf(key.tenant, key.name, key.source, options.shards),
                     key.window_unix_seconds + key.resolution_seconds + options.grace_seconds};
}

ShardWindow ShardWindowOf(const bucket::RecordKeyView& key, const RedisStoreOptions& options) {
  return ShardWindow{bucket::ShardOf(key.tenant, key.name, key.source, options.shards),
                     key.window_unix_seconds + key.resolution_seconds + options.grace_seconds};
}

void AppendDedupeId(std::string_view frame_id, std::int64_t close_unix_s, std::string& out) {
  // Plain appends, no formatting library: a flush makes one per request and part.
  char digits[std::numeric_limits<std::int64_t>::digits10 + 2];
  const auto [end, ec] = std::to_chars(std::begin(digits), std::end(digits), close_unix_s);
  out.append(frame_id);
  out.push_back('/');
  out.append(digits, static_cast<std::size_t>(end - digits));
}

std::string DedupeId(std::string_view frame_id, std::int64_t close_unix_s) {
  std::string id;
  id.reserve(frame_id.size() + 21);
  AppendDedupeId(frame_id, close_unix_s, id);
  return id;
}

namespace {
constexpr std::int64_t kUnknownOffset = INT64_MIN;

std::int64_t SystemNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
}  // namespace

RedisStore::RedisStore(RedisStoreOptions options)
    : options_(std::move(options)),
      protocol_(options_.protocol),
      clock_offsets_(new std::atomic<std::int64_t>[std::max<std::size_t>(1, options_.servers.size())]),
      previous_offsets_(new std::atomic<std::int64_t>[std::max<std::size_t>(1, options_.servers.size())]) {
  for (std::size_t i = 0; i < options_.servers.size(); ++i) {
    pools_.push_back(std::make_unique<Pool>());
    clock_offsets_[i].store(kUnknownOffset);
    previous_offsets_[i].store(kUnknownOffset);
  }
}

std::optional<std::int64_t> RedisStore::WatermarkOffsetNanos(std::size_t server) const {
  const std::optional<std::int64_t> now = ClockOffsetNanos(server);
  if (!now) return std::nullopt;
  std::int64_t offset = *now;
  const std::int64_t previous = previous_offsets_[server].load(std::memory_order_relaxed);
  if (previous != kUnknownOffset) offset = std::min(offset, previous);
  return offset - kWatermarkOffsetMarginNanos;
}

absl::Status RedisStore::PublishWatermark(std::size_t server, std::string_view receiver,
                                          std::int64_t watermark_ms, std::chrono::milliseconds ttl) {
  if (server >= options_.servers.size())
    return absl::InvalidArgumentError("PublishWatermark: no such server");
  std::unique_ptr<RedisClient> client = Checkout(server);
  absl::Status status = protocol_.PublishWatermark(*client, receiver, watermark_ms, ttl);
  Return(server, std::move(client));
  return status;
}

absl::Status RedisStore::WithdrawWatermark(std::size_t server, std::string_view receiver) {
  if (server >= options_.servers.size())
    return absl::InvalidArgumentError("WithdrawWatermark: no such server");
  std::unique_ptr<RedisClient> client = Checkout(server);
  absl::Status status = protocol_.WithdrawWatermark(*client, receiver);
  Return(server, std::move(client));
  return status;
}

std::optional<std::int64_t> RedisStore::ClockOffsetNanos(std::size_t server) const {
  if (server >= options_.servers.size()) return std::nullopt;
  const std::int64_t offset = clock_offsets_[server].load(std::memory_order_relaxed);
  if (offset == kUnknownOffset) return std::nullopt;
  return offset;
}

bool RedisStore::ClosedAt(std::uint32_t shard, std::int64_t close_unix_s,
                          std::int64_t local_unix_nanos) const {
  if (options_.servers.empty()) return false;
  const std::optional<std::int64_t> offset = ClockOffsetNanos(shard % options_.servers.size());
  if (!offset) return false;
  // Redis TIME's whole seconds, as ingest.lua compares them.
  const std::int64_t server_seconds = (local_unix_nanos + *offset) / 1'000'000'000;
  return close_unix_s <= server_seconds;
}

RedisStore::~RedisStore() = default;

std::unique_ptr<RedisClient> RedisStore::Checkout(std::size_t server) {
  Pool& pool = *pools_[server];
  {
    std::lock_guard<std::mutex> lock(pool.mu);
    if (!pool.idle.empty()) {
      std::unique_ptr<RedisClient> client = std::move(pool.idle.back());
      pool.idle.pop_back();
      return client;
    }
  }
  return std::make_unique<RedisClient>(options_.servers[server]);
}

void RedisStore::Return(std::size_t server, std::unique_ptr<RedisClient> client) {
  Pool& pool = *pools_[server];
  std::lock_guard<std::mutex> lock(pool.mu);
  pool.idle.push_back(std::move(client));
}

absl::StatusOr<IngestResult> RedisStore::Ingest(std::string_view tenant, std::string_view frame_id,
                                                bucket::BucketMap& partials) {
  if (options_.servers.empty()) return absl::FailedPreconditionError("redis store: no servers configured");
  // Group the encoded records by (shard, close): one ingest request each.
  struct Part {
    std::vector<std::string> bytes;
    std::vector<IngestRecord> records;
    std::uint64_t points = 0;
    std::string dedupe_id;
  };
  std::map<ShardWindow, Part> parts;
  bucket::BucketKey key;
  const std::int64_t received = SystemNanos();
  std::uint64_t late_at_receipt = 0;
  std::map<ShardWindow, std::uint64_t> late_parts;  // points per (shard, window) late at receipt
  for (const auto& [encoded, partial] : partials.map()) {
    if (!bucket::DecodeBucketKey(encoded, &key)) continue;  // Cannot happen: we encoded it.
    const ShardWindow where = ShardWindowOf(key, options_);
    if (ClosedAt(where.shard, where.close, received)) {
      late_at_receipt += partial.count;
      late_parts[where] += partial.count;
      continue;
    }
    Part& part = parts[where];
    part.bytes.emplace_back();
    bucket::EncodeRecord(key, partial, part.bytes.back());
    part.points += partial.count;
  }
  partials.clear();
  IngestResult result;
  result.late_points = late_at_receipt;
  // A late part a previous copy of the frame applied is a duplicate, not late, as
  // PreAggregator answers it (nothing is written for either). Unknown (server down): late.
  bool late_applied = false;
  if (!frame_id.empty() && !late_parts.empty()) {
    std::vector<std::string> ids;
    ids.reserve(late_parts.size());
    for (const auto& [where, points] : late_parts) ids.push_back(DedupeId(frame_id, where.close));
    std::vector<ShardFrame> checks;
    std::size_t i = 0;
    for (const auto& [where, points] : late_parts)
      checks.push_back(ShardFrame{where.shard, tenant, ids[i++]});
    const std::vector<absl::StatusOr<bool>> applied = FramesApplied(checks);
    i = 0;
    for (const auto& [where, points] : late_parts) {
      const absl::StatusOr<bool>& got = applied[i++];
      if (got.ok() && *got) {
        result.late_points -= points;
        late_applied = true;
      }
    }
  }
  if (parts.empty()) {
    result.duplicate = late_applied;
    return result;
  }

  // Views into `parts`, which no longer changes: one ingest request per (shard, window).
  std::map<std::uint32_t, std::vector<IngestRequest>> by_shard;
  for (auto& [id, part] : parts) {
    for (const std::string& b : part.bytes) part.records.push_back(IngestRecord{id.close, b});
    if (!frame_id.empty()) part.dedupe_id = DedupeId(frame_id, id.close);
    by_shard[id.shard].push_back(IngestRequest{tenant, part.dedupe_id, part.records});
  }
  std::vector<ShardIngest> batches;
  std::vector<const std::vector<IngestRequest>*> requests;
  for (const auto& [shard, reqs] : by_shard) {
    batches.push_back(ShardIngest{shard, reqs});
    requests.push_back(&reqs);
  }
  const std::vector<absl::StatusOr<std::vector<ShardIngestResult>>> replies = IngestShards(batches);

  bool all_duplicate = true;
  absl::Status first_error;
  for (std::size_t b = 0; b < replies.size(); ++b) {
    if (!replies[b].ok()) {
      if (first_error.ok()) first_error = replies[b].status();
      all_duplicate = false;
      continue;
    }
    const std::vector<IngestRequest>& reqs = *requests[b];
    for (std::size_t r = 0; r < reqs.size() && r < replies[b]->size(); ++r) {
      const ShardIngestResult& got = (*replies[b])[r];
      const Part& part = parts.at(ShardWindow{batches[b].shard, reqs[r].records.front().close_unix_s});
      if (got.duplicate) continue;
      all_duplicate = false;
      // All records of one (shard, window) share their fate: the window is open or not.
      if (got.late > 0) {
        result.late_points += part.points;
      } else {
        result.applied_points += part.points;
      }
    }
  }
  if (!first_error.ok()) {
    return absl::UnavailableError("redis store: " + std::string(first_error.message()));
  }
  result.duplicate = all_duplicate && !frame_id.empty();
  return result;
}

std::vector<absl::StatusOr<std::vector<ShardIngestResult>>> RedisStore::IngestShards(
    std::span<const ShardIngest> batches) {
  std::vector<absl::StatusOr<std::vector<ShardIngestResult>>> results(batches.size(),
                                                                      std::vector<ShardIngestResult>{});
  if (options_.servers.empty()) {
    for (auto& r : results) r = absl::FailedPreconditionError("redis store: no servers configured");
    return results;
  }
  // Per server: the batches it holds, in order.
  std::vector<std::vector<std::size_t>> by_server(options_.servers.size());
  for (std::size_t b = 0; b < batches.size(); ++b)
    by_server[batches[b].shard % by_server.size()].push_back(b);
  std::vector<ShardIngest> mine;
  for (std::size_t server = 0; server < by_server.size(); ++server) {
    if (by_server[server].empty()) continue;
    mine.clear();
    for (std::size_t b : by_server[server]) mine.push_back(batches[b]);
    std::unique_ptr<RedisClient> client = Checkout(server);
    std::vector<absl::StatusOr<std::vector<ShardIngestResult>>> replies =
        protocol_.IngestPipelined(*client, mine);
    Return(server, std::move(client));
    for (std::size_t i = 0; i < replies.size(); ++i) results[by_server[server][i]] = std::move(replies[i]);
  }
  return results;
}

std::vector<absl::StatusOr<bool>> RedisStore::FramesApplied(std::span<const ShardFrame> frames) {
  std::vector<absl::StatusOr<bool>> results(frames.size(), false);
  if (options_.servers.empty()) {
    for (auto& r : results) r = absl::FailedPreconditionError("redis store: no servers configured");
    return results;
  }
  std::vector<std::vector<std::size_t>> by_server(options_.servers.size());
  for (std::size_t f = 0; f < frames.size(); ++f) by_server[frames[f].shard % by_server.size()].push_back(f);
  std::vector<ShardFrame> mine;
  for (std::size_t server = 0; server < by_server.size(); ++server) {
    if (by_server[server].empty()) continue;
    mine.clear();
    for (std::size_t f : by_server[server]) mine.push_back(frames[f]);
    std::unique_ptr<RedisClient> client = Checkout(server);
    absl::StatusOr<std::vector<bool>> applied = protocol_.FramesApplied(*client, mine);
    Return(server, std::move(client));
    for (std::size_t i = 0; i < mine.size(); ++i) {
      if (applied.ok()) {
        results[by_server[server][i]] = (*applied)[i];
      } else {
        results[by_server[server][i]] = applied.status();
      }
    }
  }
  return results;
}

absl::StatusOr<bool> RedisStore::SeenFrame(std::string_view, std::string_view) { return false; }

absl::StatusOr<std::vector<bucket::ClosedBucket>> RedisStore::TakeClosed(bool) {
  return absl::UnimplementedError("redis store: outlets take windows with ShardProtocol::Seal");
}

absl::Status RedisStore::Ping() {
  absl::Status first_error;
  for (std::size_t server = 0; server < options_.servers.size(); ++server) {
    std::unique_ptr<RedisClient> client = Checkout(server);
    const std::int64_t sent = SystemNanos();
    absl::StatusOr<std::chrono::microseconds> time = ShardProtocol::ServerTime(*client);
    const std::int64_t received = SystemNanos();
    Return(server, std::move(client));
    if (!time.ok()) {
      if (first_error.ok()) first_error = time.status();
      continue;
    }
    const std::int64_t offset = time->count() * 1000 - (sent + (received - sent) / 2);
    const std::int64_t before = clock_offsets_[server].exchange(offset, std::memory_order_relaxed);
    previous_offsets_[server].store(before == kUnknownOffset ? offset : before, std::memory_order_relaxed);
  }
  return first_error;
}

}  // namespace drainmet::store
