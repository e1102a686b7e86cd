#pragma once
// The emission loop: closed windows from the store -> Librato gauges (SEMANTICS §7) ->
// request bodies of at most 300 gauges, one tenant each -> the sink, with retries
// (exponential backoff with full jitter, Retry-After honoured) until the retry horizon,
// the retries bounded by outlet.max_pending_retry_bytes. Used by the standalone service.

#include <cstdint>
#include <mutex>
#include <random>
#include <stop_token>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "common/base/clock.h"
#include "common/config/config.h"
#include "common/emit/sink.h"
#include "common/librato/gauge.h"
#include "common/store/store.h"
#include "common/telemetry/metrics.h"

namespace drainmet::emit {

/// Cuts `gauges` (sorted by tenant first, as BuildGauges returns them) into the requests
/// of SEMANTICS §7.4: one tenant each, at most `max_per_request` gauges, in order.
void ForEachRequest(std::span<const librato::Gauge> gauges, std::size_t max_per_request,
                    absl::FunctionRef<void(std::span<const librato::Gauge>)> request);

/// Owned by one thread (the outlet thread); Stop() may be called from any thread.
class Outlet {
 public:
  /// `config`, `store`, `sink`, `clock` and `metrics` must outlive the outlet.
  Outlet(const config::Config& config, store::Store& store, Sink& sink, const base::Clock& clock,
         telemetry::Metrics& metrics, std::uint64_t seed = std::random_device{}());

  /// One pass: takes the closed buckets (all buckets with `take_all`), queues their
  /// request bodies, and sends every queued body that is due.
  void RunOnce(bool take_all = false);

  /// Passes every outlet.interval_ms until `stop` is requested; then Flush().
  void Run(std::stop_token stop, std::int64_t shutdown_timeout_ms);

  /// Shutdown: takes every bucket, closed or not, and sends everything queued, retrying
  /// retryable failures until `timeout_ms` of wall time has passed. What is still queued
  /// then is dropped and counted as expired.
  void Flush(std::int64_t timeout_ms);

  /// Bodies queued (waiting for their first attempt or a retry).
  std::size_t pending() const { return pending_.size(); }
  /// Bytes of the bodies queued. Those waiting for a retry are at most
  /// outlet.max_pending_retry_bytes after each pass; a body is always tried once.
  std::uint64_t pending_bytes() const;

 private:
  struct Batch {
    std::size_t tenant = 0;
    std::string body;
    std::uint64_t gauges = 0;
    std::int64_t window_end_nanos = 0;  ///< Earliest (window + period) of its gauges.
    int attempts = 0;
    std::int64_t next_attempt_nanos = 0;
  };

  void Enqueue(std::vector<bucket::ClosedBucket> closed);
  /// outlet.max_pending_retry_bytes: while the bodies waiting for a retry are over it,
  /// drops the one of the oldest window, counted expired (logged once).
  void EnforceRetryBound();
  /// Sends due batches; returns the earliest next-attempt time of those left (or INT64_MAX).
  std::int64_t SendDue();

  const config::Config& config_;
  store::Store& store_;
  Sink& sink_;
  const base::Clock& clock_;
  telemetry::Metrics& metrics_;
  std::mt19937_64 rng_;
  absl::flat_hash_map<std::string, std::size_t> tenant_index_;
  std::vector<Batch> pending_;
};

}  // namespace drainmet::emit
