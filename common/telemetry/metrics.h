#pragma once
// Process-wide Prometheus metrics (prometheus-cpp) of a drainmet process, rendered in
// the text exposition format for GET /metrics. Every counter of SEMANTICS.md §8 is here.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/telemetry/counters.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace drainmet::telemetry {

/// Receiver pre-aggregation (store::PreAggregator): counts since the previous report.
struct PreAggregationDelta {
  std::uint64_t flushes_ok = 0;
  std::uint64_t flushes_failed = 0;    ///< Flushes where some Redis server failed.
  std::uint64_t flushes_unmerged = 0;  ///< Flushes written without the flush-level merge.
  std::uint64_t records_written = 0;   ///< Partial buckets.
  std::uint64_t elements_written = 0;  ///< Redis list elements holding them (one or more each).
  std::uint64_t requests_refused = 0;  ///< Queue full, stopping, or a copy of the frame waiting.
  std::uint64_t conflicts = 0;         ///< (shard, window) writes refused: frame applied meanwhile.
};

/// The metric families of one process. Thread-safe: prometheus-cpp metrics are atomic.
/// Names follow `drainmet_<noun>_<unit>_total` with a `reason`/`result` label.
class Metrics {
 public:
  Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  /// Adds a request's (or a replay's) counters to the families below.
  void Add(const Counters& counters);
  /// Counts one HTTP answer by status code (drainmet_http_requests_total{code}).
  void CountHttpResponse(unsigned status);
  /// Counts one request body sent to an output ("librato" or "stdout") by answer ("2xx",
  /// "429", "4xx", "5xx", "transport"): drainmet_output_requests_total{output,result}.
  void CountOutputRequest(std::string_view output, std::string_view result);
  /// Records the delay between a window's close (window + resolution) and the API's 2xx.
  void ObserveEmissionDelaySeconds(double seconds);
  /// Sets the number of open buckets held by the store.
  void SetOpenBuckets(double value);
  /// Sets the number of gauges waiting for (re)delivery.
  void SetPendingGauges(double value);
  /// Outlet (distributed mode): sets the number of shard leases this process holds.
  void SetLeasesHeld(double value);
  /// Outlet: counts one window by outcome ("acked": emitted and deleted; "lost": its
  /// records expired in Redis before an ack; "abandoned": work stopped (fenced, Redis
  /// error, shutdown), left for the next pass or holder): drainmet_outlet_windows_total.
  void CountWindow(std::string_view result);
  /// Receiver: adds pre-aggregation counts (drainmet_receiver_flushes_total{result},
  /// drainmet_receiver_flushes_unmerged_total,
  /// drainmet_receiver_records_written_total, drainmet_receiver_elements_written_total,
  /// drainmet_receiver_requests_refused_total, drainmet_receiver_frame_conflicts_total) and sets the buckets
  /// held now (drainmet_receiver_buffered_buckets{stage="queued"|"merged"}).
  void AddPreAggregation(const PreAggregationDelta& delta, double queued_buckets, double merged_buckets);
  /// Outlet: counts one request of gauges given up on and written to the dead-letter
  /// stream, by reason ("rejected", "expired"): drainmet_outlet_dead_letters_total.
  void CountDeadLetter(std::string_view reason);
  /// Outlet: counts records read from Redis that did not decode (skipped).
  void AddBadRecords(std::uint64_t n);
  /// Outlet: counts windows this process sealed, by the rule that made them due
  /// ("watermark": every live receiver's watermark had passed the close, before the write
  /// allowance; "allowance": close + allowance): drainmet_outlet_windows_sealed_total{by}.
  void CountSealed(std::string_view by, std::uint64_t n);
  /// Receiver: sets drainmet_receiver_watermark_lag_seconds (now minus the watermark last
  /// published: the age of the oldest request in flight, 0 when none is).
  void SetWatermarkLagSeconds(double seconds);
  /// Receiver: counts one watermark publication to one Redis server by result ("ok",
  /// "error"): drainmet_receiver_watermark_publish_total{result}.
  void CountWatermarkPublish(std::string_view result);

  /// The Prometheus text exposition (version 0.0.4) of every family.
  std::string RenderText() const;
  prometheus::Registry& registry() { return *registry_; }

  /// The current value of the §8 counters (for tests and logs).
  Counters Snapshot() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* http_requests_;
  prometheus::Family<prometheus::Counter>* output_requests_;
  prometheus::Counter* frames_;
  prometheus::Counter* points_;
  prometheus::Counter* duplicate_requests_;
  prometheus::Counter* bad_frame_;
  prometheus::Counter* bad_timestamp_;
  prometheus::Counter* bad_value_;
  prometheus::Counter* bad_name_;
  prometheus::Counter* late_;
  prometheus::Counter* future_;
  prometheus::Counter* series_limit_;
  prometheus::Counter* posted_;
  prometheus::Counter* rejected_;
  prometheus::Counter* expired_;
  prometheus::Counter* retried_;
  prometheus::Counter* name_conflict_;
  prometheus::Histogram* emission_delay_;
  prometheus::Gauge* open_buckets_;
  prometheus::Gauge* pending_gauges_;
  prometheus::Gauge* leases_held_;
  prometheus::Family<prometheus::Counter>* outlet_windows_;
  prometheus::Family<prometheus::Counter>* dead_letters_;
  prometheus::Counter* flushes_ok_;
  prometheus::Counter* flushes_failed_;
  prometheus::Counter* records_written_;
  prometheus::Counter* flushes_unmerged_;
  prometheus::Counter* elements_written_;
  prometheus::Counter* requests_refused_;
  prometheus::Counter* frame_conflicts_;
  prometheus::Gauge* buffered_queued_;
  prometheus::Gauge* buffered_merged_;
  prometheus::Counter* bad_records_;
  prometheus::Family<prometheus::Counter>* windows_sealed_;
  prometheus::Gauge* watermark_lag_;
  prometheus::Family<prometheus::Counter>* watermark_publish_;
};

}  // namespace drainmet::telemetry
