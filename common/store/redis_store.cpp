#include "common/store/redis_store.h"

#include <map>
#include <string>
#include <utility>

#include "common/bucket/codec.h"
#include "common/bucket/shard.h"

namespace drainmet::store {

struct RedisStore::Pool {
  std::mutex mu;
  std::vector<std::unique_ptr<RedisClient>> idle;  // guarded by mu
};

RedisStore::RedisStore(RedisStoreOptions options)
    : options_(std::move(options)), protocol_(options_.protocol) {
  for (std::size_t i = 0; i < options_.servers.size(); ++i) pools_.push_back(std::make_unique<Pool>());
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
  std::map<std::pair<std::uint32_t, std::int64_t>, Part> parts;
  bucket::BucketKey key;
  for (const auto& [encoded, partial] : partials.map()) {
    if (!bucket::DecodeBucketKey(encoded, &key)) continue;  // Cannot happen: we encoded it.
    const std::uint32_t shard = bucket::ShardOf(key.tenant, key.name, key.source, options_.shards);
    const std::int64_t close = key.window_unix_seconds + key.resolution_seconds + options_.grace_seconds;
    Part& part = parts[{shard, close}];
    part.bytes.emplace_back();
    bucket::EncodeRecord(key, partial, part.bytes.back());
    part.points += partial.count;
  }
  partials.clear();
  if (parts.empty()) return IngestResult{};

  // Views into `parts`, which no longer changes, per server then per shard.
  std::vector<std::map<std::uint32_t, std::vector<IngestRequest>>> by_server(options_.servers.size());
  std::vector<std::pair<std::uint32_t, std::int64_t>> order;
  for (auto& [id, part] : parts) {
    for (const std::string& b : part.bytes) part.records.push_back(IngestRecord{id.second, b});
    if (!frame_id.empty()) part.dedupe_id = std::string(frame_id) + "/" + std::to_string(id.second);
    by_server[id.first % options_.servers.size()][id.first].push_back(
        IngestRequest{tenant, part.dedupe_id, part.records});
  }

  IngestResult result;
  bool all_duplicate = true;
  absl::Status first_error;
  for (std::size_t server = 0; server < by_server.size(); ++server) {
    if (by_server[server].empty()) continue;
    std::vector<ShardIngest> batches;
    std::vector<const std::vector<IngestRequest>*> requests;
    for (const auto& [shard, reqs] : by_server[server]) {
      batches.push_back(ShardIngest{shard, reqs});
      requests.push_back(&reqs);
    }
    std::unique_ptr<RedisClient> client = Checkout(server);
    std::vector<absl::StatusOr<std::vector<ShardIngestResult>>> replies =
        protocol_.IngestPipelined(*client, batches);
    Return(server, std::move(client));
    for (std::size_t b = 0; b < replies.size(); ++b) {
      if (!replies[b].ok()) {
        if (first_error.ok()) first_error = replies[b].status();
        all_duplicate = false;
        continue;
      }
      const std::vector<IngestRequest>& reqs = *requests[b];
      for (std::size_t r = 0; r < reqs.size() && r < replies[b]->size(); ++r) {
        const ShardIngestResult& got = (*replies[b])[r];
        const Part& part = parts.at({batches[b].shard, reqs[r].records.front().close_unix_s});
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
  }
  if (!first_error.ok()) {
    return absl::UnavailableError("redis store: " + std::string(first_error.message()));
  }
  result.duplicate = all_duplicate && !frame_id.empty();
  return result;
}

absl::StatusOr<bool> RedisStore::SeenFrame(std::string_view, std::string_view) { return false; }

absl::StatusOr<std::vector<bucket::ClosedBucket>> RedisStore::TakeClosed(bool) {
  return absl::UnimplementedError("redis store: outlets take windows with ShardProtocol::Seal");
}

absl::Status RedisStore::Ping() {
  for (std::size_t server = 0; server < options_.servers.size(); ++server) {
    std::unique_ptr<RedisClient> client = Checkout(server);
    const std::string_view ping[] = {"PING"};
    absl::StatusOr<Reply> reply = client->Command(ping);
    Return(server, std::move(client));
    if (!reply.ok()) return reply.status();
  }
  return absl::OkStatus();
}

}  // namespace drainmet::store
