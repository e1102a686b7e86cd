#pragma once
// The receiver side of the distributed store: a Store whose Ingest writes a request's
// partial buckets into Redis shards (ShardProtocol's ingest.lua), so that a drain request
// is answered 2xx only once its points are in Redis (DESIGN rule 2). Outlets read the
// shards through ShardProtocol directly; TakeClosed is not this class's job.

#include <atomic>
#include <chrono>
#include <compare>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "common/bucket/codec.h"
#include "common/store/redis_client.h"
#include "common/store/redis_scripts.h"
#include "common/store/store.h"

namespace drainmet::store {

struct RedisStoreOptions {
  std::uint32_t shards = 64;  ///< S: logical shards (bucket::ShardOf).
  /// Redis servers; shard s lives on servers[s % servers.size()]. At least one.
  std::vector<RedisClient::Options> servers;
  std::int64_t grace_seconds = 5;  ///< SEMANTICS §6.5: close = window + resolution + grace.
  ShardProtocolOptions protocol;
};

/// Where a bucket's record goes: its shard (bucket::ShardOf of the series) and its window's
/// close time, unix seconds (window + resolution + grace, SEMANTICS §6.5).
struct ShardWindow {
  std::uint32_t shard = 0;
  std::int64_t close = 0;
  auto operator<=>(const ShardWindow&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const ShardWindow& where) {
    return H::combine(std::move(h), where.shard, where.close);
  }
};
ShardWindow ShardWindowOf(const bucket::BucketKey& key, const RedisStoreOptions& options);
/// ShardWindowOf for a key held as views (bucket::KeyViewOf of an encoded key).
ShardWindow ShardWindowOf(const bucket::RecordKeyView& key, const RedisStoreOptions& options);

/// The frame id ingest.lua de-duplicates for one request's records of one window:
/// "<frame id>/<close>" (docs/architecture.md "Redis keys"). `frame_id` non-empty.
std::string DedupeId(std::string_view frame_id, std::int64_t close_unix_s);
/// Appends DedupeId(frame_id, close_unix_s) to `out`.
void AppendDedupeId(std::string_view frame_id, std::int64_t close_unix_s, std::string& out);

/// Thread-safe: each call checks a client out of a small per-server pool.
///
/// De-duplication is per (tenant, frame id, shard, window close): a request's records of
/// one shard and one window are one ingest request whose de-dup key is
/// "<frame id>/<close>". All records of one window share their fate (applied or late),
/// so the point counts of IngestResult are exact. A retry after a partial failure applies
/// exactly the (shard, window) parts that did not get through (RELIABILITY.md §3.3).
class RedisStore final : public Store {
 public:
  explicit RedisStore(RedisStoreOptions options);
  ~RedisStore() override;

  /// Unavailable when a server cannot be reached or times out: some shards may have been
  /// written; the caller answers 503 and the retry is de-duplicated per shard and window.
  absl::StatusOr<IngestResult> Ingest(std::string_view tenant, std::string_view frame_id,
                                      bucket::BucketMap& partials) override;
  /// Always false: de-dup state lives per shard, so there is no single cheap check; the
  /// retried request is parsed and Ingest recognises it.
  absl::StatusOr<bool> SeenFrame(std::string_view tenant, std::string_view frame_id) override;
  /// Unimplemented: outlets take windows with ShardProtocol::Seal.
  absl::StatusOr<std::vector<bucket::ClosedBucket>> TakeClosed(bool all) override;
  /// 0: open buckets live in Redis.
  std::size_t OpenBuckets() const override { return 0; }

  /// TIME on every server: OK when all answer. Also measures each server's clock against
  /// this host's (ClockOffsetNanos).
  absl::Status Ping();

  /// Server `server`'s clock minus this host's system clock, ns, as the last Ping measured
  /// it (to within half a round trip); nullopt before the first answer. Thread-safe.
  std::optional<std::int64_t> ClockOffsetNanos(std::size_t server) const;

  /// The offset a receiver converts its watermark with for server `server`, ns: the
  /// smaller of the last two offsets Ping measured, minus kWatermarkOffsetMarginNanos, so
  /// that a watermark is never ahead of the clock estimate its requests' lateness was
  /// judged with (ClosedAt) when the estimate moves by up to that margin between two
  /// pings. nullopt before the first answer. Thread-safe.
  std::optional<std::int64_t> WatermarkOffsetNanos(std::size_t server) const;
  static constexpr std::int64_t kWatermarkOffsetMarginNanos = 2'000'000;

  /// Publishes receiver `receiver`'s watermark on server `server` (ShardProtocol::
  /// PublishWatermark). Thread-safe; the errors of RedisClient.
  absl::Status PublishWatermark(std::size_t server, std::string_view receiver, std::int64_t watermark_ms,
                                std::chrono::milliseconds ttl);
  /// Removes receiver `receiver`'s watermark from server `server`. Thread-safe.
  absl::Status WithdrawWatermark(std::size_t server, std::string_view receiver);

  /// SEMANTICS §6.5 at receipt: whether the window closing at `close_unix_s` (window +
  /// resolution + grace) had closed on `shard`'s server clock at `local_unix_nanos` (this
  /// host's system clock). False when that server's offset is not known yet (ingest.lua
  /// then judges at write time). Thread-safe.
  bool ClosedAt(std::uint32_t shard, std::int64_t close_unix_s, std::int64_t local_unix_nanos) const;

  /// The options this store was built with.
  const RedisStoreOptions& options() const { return options_; }

  /// Sends each batch to its shard's server (ShardProtocol::IngestPipelined: one round trip
  /// per server). One entry per batch, in order; a server's error is repeated in each of
  /// its batches. Thread-safe.
  std::vector<absl::StatusOr<std::vector<ShardIngestResult>>> IngestShards(
      std::span<const ShardIngest> batches);

  /// ShardProtocol::FramesApplied across servers: one entry per frame, in order, or the
  /// error of the frame's server (then the frame's state is unknown). Thread-safe.
  std::vector<absl::StatusOr<bool>> FramesApplied(std::span<const ShardFrame> frames);

 private:
  struct Pool;
  std::unique_ptr<RedisClient> Checkout(std::size_t server);
  void Return(std::size_t server, std::unique_ptr<RedisClient> client);

  const RedisStoreOptions options_;
  const ShardProtocol protocol_;
  std::vector<std::unique_ptr<Pool>> pools_;
  /// Per server: ClockOffsetNanos, or kUnknownOffset.
  std::unique_ptr<std::atomic<std::int64_t>[]> clock_offsets_;
  /// Per server: the offset Ping measured before the last one, or kUnknownOffset.
  std::unique_ptr<std::atomic<std::int64_t>[]> previous_offsets_;
};

}  // namespace drainmet::store
