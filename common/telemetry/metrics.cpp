#include "common/telemetry/metrics.h"

#include <sstream>

#include "prometheus/text_serializer.h"

namespace drainmet::telemetry {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  auto& r = *registry_;
  http_requests_ =
      &BuildCounter().Name("drainmet_http_requests_total").Help("HTTP answers by status code.").Register(r);
  output_requests_ =
      &BuildCounter()
           .Name("drainmet_output_requests_total")
           .Help("Request bodies sent to an output (librato: POST /v1/metrics; stdout), by result.")
           .Register(r);
  frames_ = &BuildCounter()
                 .Name("drainmet_frames_total")
                 .Help("Frames delimited by a valid length (SEMANTICS 8).")
                 .Register(r)
                 .Add({});
  points_ = &BuildCounter()
                 .Name("drainmet_points_total")
                 .Help("Points that reached a bucket (SEMANTICS 8).")
                 .Register(r)
                 .Add({});
  duplicate_requests_ = &BuildCounter()
                             .Name("drainmet_duplicate_requests_total")
                             .Help("Drain requests ignored as a retried Logplex-Frame-Id.")
                             .Register(r)
                             .Add({});
  auto& input = BuildCounter()
                    .Name("drainmet_input_rejected_total")
                    .Help(
                        "Frames, values and names rejected while parsing, by reason "
                        "(SEMANTICS 1.2, 1.4, 1.5, 3.3, 4.1, 5.1). bad_timestamp frames are "
                        "still used, at the receive time.")
                    .Register(r);
  bad_frame_ = &input.Add({{"reason", "bad_frame"}});
  bad_timestamp_ = &input.Add({{"reason", "bad_timestamp"}});
  bad_value_ = &input.Add({{"reason", "bad_value"}});
  bad_name_ = &input.Add({{"reason", "bad_name"}});
  auto& dropped = BuildCounter()
                      .Name("drainmet_points_dropped_total")
                      .Help(
                          "Points dropped before reaching a bucket, by reason (SEMANTICS 6.5; "
                          "series_limit: the store's open-bucket bound).")
                      .Register(r);
  late_ = &dropped.Add({{"reason", "late"}});
  future_ = &dropped.Add({{"reason", "future"}});
  series_limit_ = &dropped.Add({{"reason", "series_limit"}});
  auto& gauges = BuildCounter()
                     .Name("drainmet_gauges_total")
                     .Help("Librato gauges by outcome (SEMANTICS 7.4-7.6).")
                     .Register(r);
  posted_ = &gauges.Add({{"result", "posted"}});
  rejected_ = &gauges.Add({{"result", "rejected"}});
  expired_ = &gauges.Add({{"result", "expired"}});
  retried_ = &gauges.Add({{"result", "retried"}});
  name_conflict_ = &gauges.Add({{"result", "name_conflict"}});
  emission_delay_ = &BuildHistogram()
                         .Name("drainmet_emission_delay_seconds")
                         .Help("Time from a window's end to the API's 2xx for its gauges.")
                         .Register(r)
                         .Add({}, prometheus::Histogram::BucketBoundaries{0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60,
                                                                          120, 300, 900});
  open_buckets_ = &BuildGauge()
                       .Name("drainmet_open_buckets")
                       .Help("Buckets held in the store, not yet closed (sampled every outlet interval).")
                       .Register(r)
                       .Add({});
  pending_gauges_ = &BuildGauge()
                         .Name("drainmet_pending_gauges")
                         .Help("Gauges waiting for delivery or a retry.")
                         .Register(r)
                         .Add({});
  leases_held_ = &BuildGauge()
                      .Name("drainmet_outlet_leases_held")
                      .Help("Shard leases held by this outlet (distributed mode).")
                      .Register(r)
                      .Add({});
  outlet_windows_ = &BuildCounter()
                         .Name("drainmet_outlet_windows_total")
                         .Help("Sealed windows by outcome: acked, lost (expired in Redis), abandoned.")
                         .Register(r);
  auto& flushes = BuildCounter()
                      .Name("drainmet_receiver_flushes_total")
                      .Help("Receiver pre-aggregation writes to Redis, by result (ok, error).")
                      .Register(r);
  flushes_ok_ = &flushes.Add({{"result", "ok"}});
  flushes_failed_ = &flushes.Add({{"result", "error"}});
  flushes_unmerged_ =
      &BuildCounter()
           .Name("drainmet_receiver_flushes_unmerged_total")
           .Help(
               "Receiver writes to Redis without the flush-level merge (the last merged flush "
               "folded away fewer than 1 in 10 buckets: high cardinality).")
           .Register(r)
           .Add({});
  records_written_ = &BuildCounter()
                          .Name("drainmet_receiver_records_written_total")
                          .Help("Merged partial buckets the receiver sent to Redis.")
                          .Register(r)
                          .Add({});
  elements_written_ = &BuildCounter()
                           .Name("drainmet_receiver_elements_written_total")
                           .Help(
                               "Redis list elements the receiver's partial buckets were sent in (one or more "
                               "buckets each).")
                           .Register(r)
                           .Add({});
  requests_refused_ =
      &BuildCounter()
           .Name("drainmet_receiver_requests_refused_total")
           .Help(
               "Drain requests refused with 503 before any write: pre-aggregation queue full, "
               "stopping, or another copy of the frame still waiting.")
           .Register(r)
           .Add({});
  frame_conflicts_ = &BuildCounter()
                          .Name("drainmet_receiver_frame_conflicts_total")
                          .Help(
                              "(shard, window) writes refused whole because one of their frames was applied "
                              "meanwhile by another copy; their requests answered 503.")
                          .Register(r)
                          .Add({});
  auto& buffered = BuildGauge()
                       .Name("drainmet_receiver_buffered_buckets")
                       .Help("Buckets the receiver holds before writing: queued (not merged yet) and merged.")
                       .Register(r);
  buffered_queued_ = &buffered.Add({{"stage", "queued"}});
  buffered_merged_ = &buffered.Add({{"stage", "merged"}});
  dead_letters_ =
      &BuildCounter()
           .Name("drainmet_outlet_dead_letters_total")
           .Help(
               "Requests of gauges given up on (rejected for good, or expired) and written to the "
               "shard's dead-letter stream, by reason.")
           .Register(r);
  windows_sealed_ =
      &BuildCounter()
           .Name("drainmet_outlet_windows_sealed_total")
           .Help(
               "Windows sealed by this outlet, by the rule that made them due: watermark (every "
               "live receiver had written everything it received before the close), allowance "
               "(close + write allowance).")
           .Register(r);
  watermark_lag_ =
      &BuildGauge()
           .Name("drainmet_receiver_watermark_lag_seconds")
           .Help(
               "Now minus the receiver's watermark last published: the age of its oldest request "
               "in flight, 0 when none is.")
           .Register(r)
           .Add({});
  watermark_publish_ = &BuildCounter()
                            .Name("drainmet_receiver_watermark_publish_total")
                            .Help("Watermark publications to the Redis servers, by result (ok, error).")
                            .Register(r);
  bad_records_ = &BuildCounter()
                      .Name("drainmet_outlet_bad_records_total")
                      .Help("Records read from Redis that did not decode; skipped.")
                      .Register(r)
                      .Add({});
}

void Metrics::Add(const Counters& c) {
  frames_->Increment(static_cast<double>(c.frames));
  points_->Increment(static_cast<double>(c.points));
  duplicate_requests_->Increment(static_cast<double>(c.duplicate_request));
  bad_frame_->Increment(static_cast<double>(c.bad_frame));
  bad_timestamp_->Increment(static_cast<double>(c.bad_timestamp));
  bad_value_->Increment(static_cast<double>(c.bad_value));
  bad_name_->Increment(static_cast<double>(c.bad_name));
  late_->Increment(static_cast<double>(c.late));
  future_->Increment(static_cast<double>(c.future));
  series_limit_->Increment(static_cast<double>(c.series_limit));
  posted_->Increment(static_cast<double>(c.posted));
  rejected_->Increment(static_cast<double>(c.rejected));
  expired_->Increment(static_cast<double>(c.expired));
  retried_->Increment(static_cast<double>(c.retried));
  name_conflict_->Increment(static_cast<double>(c.name_conflict));
}

void Metrics::CountHttpResponse(unsigned status) {
  http_requests_->Add({{"code", std::to_string(status)}}).Increment();
}

void Metrics::CountOutputRequest(std::string_view output, std::string_view result) {
  output_requests_->Add({{"output", std::string(output)}, {"result", std::string(result)}}).Increment();
}

void Metrics::ObserveEmissionDelaySeconds(double seconds) { emission_delay_->Observe(seconds); }
void Metrics::SetOpenBuckets(double value) { open_buckets_->Set(value); }
void Metrics::SetPendingGauges(double value) { pending_gauges_->Set(value); }
void Metrics::SetLeasesHeld(double value) { leases_held_->Set(value); }
void Metrics::CountSealed(std::string_view by, std::uint64_t n) {
  windows_sealed_->Add({{"by", std::string(by)}}).Increment(static_cast<double>(n));
}

void Metrics::SetWatermarkLagSeconds(double seconds) { watermark_lag_->Set(seconds); }

void Metrics::CountWatermarkPublish(std::string_view result) {
  watermark_publish_->Add({{"result", std::string(result)}}).Increment();
}

void Metrics::CountWindow(std::string_view result) {
  outlet_windows_->Add({{"result", std::string(result)}}).Increment();
}
void Metrics::AddPreAggregation(const PreAggregationDelta& delta, double queued_buckets,
                                double merged_buckets) {
  flushes_ok_->Increment(static_cast<double>(delta.flushes_ok));
  flushes_failed_->Increment(static_cast<double>(delta.flushes_failed));
  flushes_unmerged_->Increment(static_cast<double>(delta.flushes_unmerged));
  records_written_->Increment(static_cast<double>(delta.records_written));
  elements_written_->Increment(static_cast<double>(delta.elements_written));
  requests_refused_->Increment(static_cast<double>(delta.requests_refused));
  frame_conflicts_->Increment(static_cast<double>(delta.conflicts));
  buffered_queued_->Set(queued_buckets);
  buffered_merged_->Set(merged_buckets);
}
void Metrics::CountDeadLetter(std::string_view reason) {
  dead_letters_->Add({{"reason", std::string(reason)}}).Increment();
}
void Metrics::AddBadRecords(std::uint64_t n) { bad_records_->Increment(static_cast<double>(n)); }

std::string Metrics::RenderText() const {
  prometheus::TextSerializer serializer;
  std::ostringstream out;
  serializer.Serialize(out, registry_->Collect());
  return out.str();
}

Counters Metrics::Snapshot() const {
  auto v = [](const prometheus::Counter* c) { return static_cast<std::uint64_t>(c->Value()); };
  Counters c;
  c.frames = v(frames_);
  c.points = v(points_);
  c.duplicate_request = v(duplicate_requests_);
  c.bad_frame = v(bad_frame_);
  c.bad_timestamp = v(bad_timestamp_);
  c.bad_value = v(bad_value_);
  c.bad_name = v(bad_name_);
  c.late = v(late_);
  c.future = v(future_);
  c.series_limit = v(series_limit_);
  c.posted = v(posted_);
  c.rejected = v(rejected_);
  c.expired = v(expired_);
  c.retried = v(retried_);
  c.name_conflict = v(name_conflict_);
  return c;
}

}  // namespace drainmet::telemetry
