#pragma once
// A receiver's pre-aggregation (issue "Distributed drainmet", DESIGN.md data flow): the
// partial buckets of every drain request of a flush interval are merged in memory, then
// written to their Redis shards in one ingest.lua call per shard; each request is answered
// when the write that carries its points has succeeded (DESIGN rule 2: 2xx only once the
// points are in Redis). docs/architecture.md "Receiver" describes it.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/store/redis_store.h"
#include "common/store/store.h"
#include "common/store/watermark.h"

namespace drainmet::store {

struct PreAggregatorOptions {
  /// The longest a batch collects before its write starts (the first request of a batch
  /// waits at most this long plus the write).
  std::chrono::milliseconds flush_interval{1000};
  /// How long a batch collects after its first request before its write starts (group
  /// commit: requests that arrive during a write join the next batch, so under load the
  /// batches grow by themselves). At most flush_interval; the effective wait is the
  /// smaller of the two.
  std::chrono::milliseconds flush_delay{1000};
  /// Buckets (series × window) merged in memory at most: reaching it flushes at once. The
  /// queue of requests not yet merged is bounded by the same number of buckets; a request
  /// that would exceed it is refused with Unavailable (the receiver answers 503 with
  /// Retry-After) instead of queuing without bound. > 0.
  std::uint64_t max_series = 200'000;
  /// Buckets of one tenant in one window of one resolution merged into one flush at most
  /// (limits.max_series_per_tenant): the points of a bucket that is new to the flush
  /// beyond it are dropped (IngestResult::series_limit_points). Buckets already in the
  /// flush always take their points; whether a bucket exists in Redis is not known here,
  /// so the bound is per flush. > 0.
  std::uint64_t max_series_per_tenant = 100'000;
  /// When set (must outlive the PreAggregator): each accepted request is registered at
  /// IngestAsync, its lateness judged at the receipt time the registry gives, and released
  /// once its `done` has run (written and answered, or failed), so the registry's watermark
  /// is the receiver's (docs/redis-layout.md "Receivers' watermarks").
  InflightRegistry* registry = nullptr;
};

/// Counters of the pre-aggregation, cumulative since start (for metrics and tests).
struct PreAggregatorStats {
  std::uint64_t flushes = 0;       ///< Writes (one per flush that had data).
  std::uint64_t flush_errors = 0;  ///< Flushes where some server failed (its requests: 503).
  /// Flushes written without the flush-level merge: the last merged flush had folded away
  /// fewer than 1 in 10 of its buckets (high cardinality), so equal keys of different
  /// requests went to Redis as separate records (the outlet merges them).
  std::uint64_t flushes_unmerged = 0;
  std::uint64_t records_written = 0;  ///< Merged partial buckets sent to Redis.
  /// Redis list elements those records were sent in (one or more records each; see
  /// bucket::ElementWriter): per (shard, window) and flush, its records' bytes / 8,000
  /// (bucket::kMaxElementBytes), rounded up.
  std::uint64_t elements_written = 0;
  std::uint64_t requests_merged = 0;   ///< Requests whose partial buckets were merged.
  std::uint64_t requests_refused = 0;  ///< Refused: queue full, stopping, or frame in flight.
  std::uint64_t conflicts = 0;         ///< (shard, window) writes refused: a frame was applied meanwhile.
  std::uint64_t queued_buckets = 0;    ///< Now: buckets of requests queued, not yet merged.
};

/// A Store that batches: IngestAsync queues the request; a flusher thread checks its frame
/// id against Redis (which (shard, window) parts a previous copy already applied: those
/// parts are skipped, RELIABILITY.md §3.3), drops the parts whose window had closed when
/// the request arrived (SEMANTICS §6.5 on the shard server's clock, RedisStore::ClosedAt:
/// counted late, unless a previous copy applied them: a retry is a duplicate whenever it
/// comes), merges the rest into one partial bucket per
/// (series, window) (unless merging stopped paying: PreAggregatorStats::flushes_unmerged),
/// and every flush interval (or when `max_series` buckets are merged, or
/// when stopping) writes them with RedisStore::IngestShards: per (shard, window), one
/// ingest.lua request carrying the merged records and every merged frame id, applied all
/// or nothing. Then each request's `done` runs with its own point counts.
///
/// Failure handling: a server error fails the requests with parts on that server
/// (Unavailable: 503, Logplex retries; parts on other servers stay applied and are
/// recognised by the retry's pre-check). A (shard, window) write refused because one of
/// its frames was applied meanwhile (two copies of one frame in flight on two receivers at
/// once) fails its requests with Aborted; their retries skip what was applied. A second
/// copy of a frame still waiting here is refused with Aborted at once. No point is ever
/// applied twice; a 2xx is only given after the write.
///
/// Thread-safety: IngestAsync, Ingest, FlushSoon, Stop and stats may be called from any
/// thread; `done` runs on the flusher thread or on the caller's.
class PreAggregator final : public Store {
 public:
  /// `redis` must outlive this object. Starts the flusher thread.
  PreAggregator(RedisStore& redis, PreAggregatorOptions options);
  ~PreAggregator() override;  ///< Stop().
  PreAggregator(const PreAggregator&) = delete;
  PreAggregator& operator=(const PreAggregator&) = delete;

  void IngestAsync(std::string tenant, std::string frame_id, bucket::BucketMap partials,
                   IngestDone done) override;
  /// IngestAsync, waiting for its result (tests, tools): blocks up to a flush interval.
  absl::StatusOr<IngestResult> Ingest(std::string_view tenant, std::string_view frame_id,
                                      bucket::BucketMap& partials) override;
  /// While the flusher does not merge (PreAggregatorStats::flushes_unmerged): a request's
  /// records are written as they come, so its table need not give each point a slot.
  bool PrefersPointLog() const override { return encode_ahead_.load(std::memory_order_relaxed); }
  /// Always false: the pre-check runs on the flusher thread, batched.
  absl::StatusOr<bool> SeenFrame(std::string_view tenant, std::string_view frame_id) override;
  /// Unimplemented: outlets take windows (ShardProtocol::Seal).
  absl::StatusOr<std::vector<bucket::ClosedBucket>> TakeClosed(bool all) override;
  /// Buckets merged in memory and not yet written.
  std::size_t OpenBuckets() const override { return merged_buckets_.load(std::memory_order_relaxed); }

  /// From now on, write as soon as anything is merged (shutdown: in-flight requests are
  /// answered without waiting for the interval). Idempotent.
  void FlushSoon();
  /// Refuses new requests (Unavailable), writes what is queued and merged, answers every
  /// waiting request, joins the flusher. Idempotent.
  void Stop();

  PreAggregatorStats stats() const;

 private:
  /// One (shard, window) part of a request: the buckets of its table that go to one
  /// ingest.lua request.
  struct Part {
    ShardWindow where;
    std::uint64_t points = 0;
    /// Its buckets; records when encoded ahead (the same number: one record a bucket).
    std::uint64_t buckets = 0;
    bool skip = false;  ///< Not a key, late at receipt, or applied by an earlier copy.
    bool late = false;  ///< Its window had closed at receipt.
  };
  /// What the caller's thread works out of a request's table before queuing it (Prepare:
  /// the table is in that thread's cache then, not in the flusher's): per bucket, in the
  /// table's iteration order, its encoded key, the key's fields as views into it, its
  /// bucket and the index of its part. Views and pointers into the table's slots, which
  /// stay put while the table is moved (never rehashed after).
  ///
  /// While the flusher does not merge (PreAggregatorStats::flushes_unmerged), the records
  /// are encoded here instead (PrepareEncoded), part by part, as batch elements
  /// (bucket::ElementWriter) in `bytes`: part p's elements end at
  /// element_ends[first_element[p] .. first_element[p + 1] - 1]. An unmerged flush then
  /// writes them as they are; the per-bucket vectors stay empty until Rebuild.
  struct Prepared {
    /// Buckets of one resolution and window (of the request's one tenant); counted only
    /// when the records are encoded here.
    struct Window {
      std::int32_t resolution = 0;
      std::int64_t window = 0;
      std::uint64_t buckets = 0;
    };
    std::string tenant;
    std::vector<Part> parts;
    std::vector<std::uint32_t> part_of;
    std::vector<std::string_view> encoded;
    std::vector<bucket::RecordKeyView> keys;
    std::vector<bucket::PartialBucket*> buckets;
    std::vector<Window> windows;
    bool records_encoded = false;
    /// False once the table went back to the caller's thread (encoded ahead): part_of,
    /// encoded, keys and buckets are empty until Rebuild.
    bool table = true;
    std::string bytes;
    std::vector<std::size_t> element_ends;
    std::vector<std::size_t> first_element;
    /// Encoded here: the bucket::HashKeyBytes of its keys that are 0 mod 16, for the
    /// flusher's estimate of what merging would fold away (a key is sampled in every
    /// request or in none).
    std::vector<std::uint64_t> sampled;
  };
  struct Queued {
    std::string tenant;
    std::string frame_id;
    bucket::BucketMap partials;
    Prepared prepared;
    IngestDone done;
    std::int64_t received_unix_nanos = 0;  ///< System clock at IngestAsync: lateness is judged then.
  };
  struct Batch;

  void Run();
  /// Fills `prepared` from `partials` (on the caller's thread): parts, and per bucket its
  /// key, bucket and part, for the flusher to merge (moves a point log into the table).
  void Prepare(bucket::BucketMap& partials, Prepared& prepared) const;
  /// Fills `prepared` from `partials` (on the caller's thread) with encoded records: parts,
  /// windows and elements (bytes, element_ends, first_element), in one pass over the point
  /// log and the table; part_of, encoded, keys and buckets stay empty (table false).
  void PrepareEncoded(bucket::BucketMap& partials, Prepared& prepared) const;
  /// Decodes the records of `prepared` (encoded ahead, table given back) into `table`
  /// (empty) and fills part_of, encoded, keys and buckets from it; `parts` stay.
  static void Rebuild(Prepared& prepared, bucket::BucketMap& table);
  /// How long a batch collects after its first request: min(flush_delay, flush_interval).
  std::chrono::milliseconds FlushWait() const;
  /// Pre-checks and merges `queued` into `batch` (answers duplicates and refusals now).
  void Absorb(std::vector<Queued>& queued, Batch& batch);
  /// Writes `batch` and answers its requests.
  void Flush(Batch& batch);
  void Refuse(IngestDone& done, absl::Status status);

  RedisStore& redis_;
  const PreAggregatorOptions options_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Queued> queue_;         // guarded by mu_
  std::uint64_t queued_buckets_ = 0;  // guarded by mu_
  bool stopping_ = false;             // guarded by mu_
  bool flush_soon_ = false;           // guarded by mu_
  PreAggregatorStats stats_;          // guarded by mu_
  std::atomic<std::size_t> merged_buckets_{0};
  /// Set by the flusher while it does not merge: IngestAsync encodes records ahead.
  std::atomic<bool> encode_ahead_{false};
  std::mutex stop_mu_;  // serialises Stop()
  std::thread flusher_;
};

}  // namespace drainmet::store
