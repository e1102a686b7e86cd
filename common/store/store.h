#pragma once
// The Store interface between ingestion (drain handler) and emission (outlet): where
// partial buckets become buckets, windows close, and retried requests are recognised.
// MemoryStore (standalone) implements it here; the Redis store (distributed) later.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/bucket/partial_bucket.h"

namespace drainmet::store {

/// What Ingest did with one request's partial buckets. Point counts are bucket counts.
struct IngestResult {
  bool duplicate = false;                 ///< The frame id was seen: nothing applied.
  std::uint64_t applied_points = 0;       ///< Points that reached a bucket.
  std::uint64_t late_points = 0;          ///< Points for a closed window (SEMANTICS §6.5).
  std::uint64_t series_limit_points = 0;  ///< Points of new buckets over the open-bucket bound.
};

/// Completion of IngestAsync: called exactly once, on any thread.
using IngestDone = std::function<void(absl::StatusOr<IngestResult>)>;

/// Thread-safe: Ingest and TakeClosed may be called from any threads.
class Store {
 public:
  virtual ~Store() = default;

  /// Ingest without blocking the caller: `done` gets what Ingest would return, possibly
  /// before this returns (the default: Ingest, then done), possibly later from another
  /// thread (a store that batches several requests into one write, PreAggregator).
  virtual void IngestAsync(std::string tenant, std::string frame_id, bucket::BucketMap partials,
                           IngestDone done) {
    done(Ingest(tenant, frame_id, partials));
  }

  /// Applies one drain request's partial buckets of `tenant` atomically: when `frame_id`
  /// is non-empty and was applied for this tenant within the de-duplication window, the
  /// request is a duplicate and nothing changes; otherwise each bucket whose window is
  /// closed at the store's clock (window + resolution + grace has passed) is late, each
  /// new bucket over the open-bucket bound is dropped, and the others merge. Empties
  /// `partials`. Unavailable when the store cannot be reached (the caller answers 503).
  virtual absl::StatusOr<IngestResult> Ingest(std::string_view tenant, std::string_view frame_id,
                                              bucket::BucketMap& partials) = 0;

  /// True when `frame_id` (non-empty) was applied for `tenant` within the window: a cheap
  /// pre-check that lets a retried request skip parsing. Ingest remains authoritative.
  virtual absl::StatusOr<bool> SeenFrame(std::string_view tenant, std::string_view frame_id) = 0;

  /// Removes and returns the buckets whose window is closed at the store's clock; with
  /// `all`, every bucket (shutdown flush). Sorted by bucket key. Once taken, a window
  /// stays closed: later points for it are late.
  virtual absl::StatusOr<std::vector<bucket::ClosedBucket>> TakeClosed(bool all) = 0;

  /// Buckets currently open (for metrics).
  virtual std::size_t OpenBuckets() const = 0;

  /// Whether a request's table should log the points of series it sees once
  /// (bucket::BucketMap::set_log_points) rather than give each a table slot: true while
  /// this store writes each request's records as they come (at high cardinality), where a
  /// table slot per point buys nothing. Any answer is correct (BucketMap::map() folds the
  /// log); this one is about cost. Thread-safe.
  virtual bool PrefersPointLog() const { return false; }
};

}  // namespace drainmet::store
