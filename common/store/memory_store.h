#pragma once
// In-process Store for the standalone binary and tests: one mutex, a BucketMap, an index
// of buckets by close time, and a bounded map of recent frame ids.

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "common/base/clock.h"
#include "common/store/store.h"

namespace drainmet::store {

struct MemoryStoreOptions {
  std::int64_t grace_seconds = 5;                ///< SEMANTICS §6.5.
  std::uint64_t max_open_buckets = 1'000'000;    ///< Bound on buckets held.
  std::int64_t dedupe_window_seconds = 600;      ///< How long a frame id is remembered.
  std::uint64_t dedupe_max_entries = 1'000'000;  ///< Oldest ids are forgotten past this.
  /// Buckets of one tenant in one window of one resolution at most (limits.
  /// max_series_per_tenant): points of new ones beyond it count series_limit_points;
  /// buckets already open always take their points.
  std::uint64_t max_series_per_tenant = 100'000;
};

/// Thread-safe (one mutex). The clock must outlive the store.
class MemoryStore final : public Store {
 public:
  MemoryStore(const base::Clock& clock, const MemoryStoreOptions& options);

  absl::StatusOr<IngestResult> Ingest(std::string_view tenant, std::string_view frame_id,
                                      bucket::BucketMap& partials) override;
  absl::StatusOr<bool> SeenFrame(std::string_view tenant, std::string_view frame_id) override;
  absl::StatusOr<std::vector<bucket::ClosedBucket>> TakeClosed(bool all) override;
  std::size_t OpenBuckets() const override;

 private:
  /// Unix nanoseconds at which a window closes: (window + resolution + grace) s.
  std::int64_t CloseTimeNanos(std::int64_t window, std::int32_t resolution) const;
  void ExpireFramesLocked(std::int64_t now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool SeenLocked(const std::string& key, std::int64_t now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const base::Clock& clock_;
  const MemoryStoreOptions options_;
  mutable std::mutex mu_;
  bucket::BucketMap open_ ABSL_GUARDED_BY(mu_);
  /// close time (ns) -> encoded keys of the buckets closing then.
  std::map<std::int64_t, std::vector<std::string>> closing_ ABSL_GUARDED_BY(mu_);
  /// Latest close time already taken per resolution: windows closing at or before it
  /// are closed for good even if the clock moved back.
  std::int64_t closed_through_nanos_ ABSL_GUARDED_BY(mu_) = INT64_MIN;
  /// tenant NUL frame id -> expiry (ns); frames_fifo_ in insertion (= expiry) order.
  absl::flat_hash_map<std::string, std::int64_t> frames_ ABSL_GUARDED_BY(mu_);
  std::deque<std::pair<std::int64_t, std::string>> frames_fifo_ ABSL_GUARDED_BY(mu_);
  /// tenant NUL window NUL resolution -> open buckets of that tenant's window; an entry is
  /// erased when its window's buckets are taken (so at most one per open window).
  absl::flat_hash_map<std::string, std::uint64_t> series_ ABSL_GUARDED_BY(mu_);
};

}  // namespace drainmet::store
