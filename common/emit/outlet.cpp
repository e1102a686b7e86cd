#include "common/emit/outlet.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "common/emit/retry.h"
#include "common/telemetry/log.h"

namespace drainmet::emit {
namespace {

constexpr std::int64_t kNanosPerMilli = 1'000'000;

}  // namespace

void ForEachRequest(std::span<const librato::Gauge> gauges, std::size_t max_per_request,
                    absl::FunctionRef<void(std::span<const librato::Gauge>)> request) {
  for (std::size_t begin = 0; begin < gauges.size();) {
    std::size_t end = begin;
    while (end < gauges.size() && gauges[end].tenant == gauges[begin].tenant) ++end;
    for (std::size_t i = begin; i < end; i += max_per_request) {
      request(gauges.subspan(i, std::min(max_per_request, end - i)));
    }
    begin = end;
  }
}

Outlet::Outlet(const config::Config& config, store::Store& store, Sink& sink, const base::Clock& clock,
               telemetry::Metrics& metrics, std::uint64_t seed)
    : config_(config), store_(store), sink_(sink), clock_(clock), metrics_(metrics), rng_(seed) {
  for (std::size_t i = 0; i < config_.tenants.size(); ++i) tenant_index_[config_.tenants[i].id] = i;
}

void Outlet::Enqueue(std::vector<bucket::ClosedBucket> closed) {
  if (closed.empty()) return;
  telemetry::Counters counters;
  std::vector<librato::Gauge> gauges = librato::BuildGauges(closed, counters);
  metrics_.Add(counters);
  const std::int64_t now = clock_.NowUnixNanos();
  const auto max_per_request = static_cast<std::size_t>(config_.outlet.max_gauges_per_request);
  ForEachRequest(gauges, max_per_request, [&](std::span<const librato::Gauge> chunk) {
    auto tenant = tenant_index_.find(chunk.front().tenant);
    if (tenant == tenant_index_.end()) {
      // A tenant removed from the config while its buckets were open: nobody to post as.
      telemetry::LogOnce("unknown_tenant", "closed buckets of an unknown tenant dropped",
                         {{"tenant", chunk.front().tenant}});
      return;
    }
    Batch batch;
    batch.tenant = tenant->second;
    batch.body = librato::RenderRequestBody(chunk);
    batch.gauges = chunk.size();
    batch.window_end_nanos = INT64_MAX;
    for (const librato::Gauge& g : chunk) {
      batch.window_end_nanos =
          std::min(batch.window_end_nanos, (g.measure_time + g.period) * base::kNanosPerSecond);
    }
    batch.next_attempt_nanos = now;
    pending_.push_back(std::move(batch));
  });
}

std::uint64_t Outlet::pending_bytes() const {
  std::uint64_t bytes = 0;
  for (const Batch& b : pending_) bytes += b.body.size();
  return bytes;
}

void Outlet::EnforceRetryBound() {
  const std::uint64_t bound = config_.outlet.max_pending_retry_bytes;
  std::uint64_t retry_bytes = 0;
  for (const Batch& b : pending_) {
    if (b.attempts > 0) retry_bytes += b.body.size();
  }
  if (retry_bytes <= bound) return;
  // The batches waiting for a retry, oldest window first.
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < pending_.size(); ++i) {
    if (pending_[i].attempts > 0) order.push_back(i);
  }
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return pending_[a].window_end_nanos < pending_[b].window_end_nanos;
  });
  std::vector<bool> drop(pending_.size(), false);
  telemetry::Counters counters;
  std::uint64_t batches = 0;
  for (std::size_t i : order) {
    if (retry_bytes <= bound) break;
    drop[i] = true;
    retry_bytes -= pending_[i].body.size();
    counters.expired += pending_[i].gauges;
    ++batches;
  }
  std::vector<Batch> keep;
  keep.reserve(pending_.size() - batches);
  for (std::size_t i = 0; i < pending_.size(); ++i) {
    if (!drop[i]) keep.push_back(std::move(pending_[i]));
  }
  pending_ = std::move(keep);
  metrics_.Add(counters);
  telemetry::LogOnce(
      "retry_bound",
      "outlet.max_pending_retry_bytes reached; the oldest gauges waiting for a retry are dropped",
      {{"gauges", std::to_string(counters.expired)},
       {"requests", std::to_string(batches)},
       {"max_pending_retry_bytes", std::to_string(bound)}});
}

std::int64_t Outlet::SendDue() {
  const std::int64_t horizon = config_.retry_horizon_seconds * base::kNanosPerSecond;
  std::int64_t next = INT64_MAX;
  std::vector<Batch> keep;
  for (Batch& batch : pending_) {
    const std::int64_t now = clock_.NowUnixNanos();
    if (batch.next_attempt_nanos > now) {
      next = std::min(next, batch.next_attempt_nanos);
      keep.push_back(std::move(batch));
      continue;
    }
    telemetry::Counters counters;
    if (batch.attempts > 0) counters.retried += batch.gauges;
    const librato::PostResult result = sink_.Post(batch.tenant, batch.body);
    ++batch.attempts;
    metrics_.CountOutputRequest(sink_.OutputName(batch.tenant), ResultLabel(result));
    const std::string& tenant = config_.tenants[batch.tenant].id;
    const std::int64_t after = clock_.NowUnixNanos();
    switch (result.delivery) {
      case librato::Delivery::kAccepted:
        counters.posted += batch.gauges;
        metrics_.ObserveEmissionDelaySeconds(static_cast<double>(after - batch.window_end_nanos) /
                                             static_cast<double>(base::kNanosPerSecond));
        break;
      case librato::Delivery::kRejected:
        counters.rejected += batch.gauges;
        telemetry::Log(telemetry::Level::kError, "Librato rejected a request; its gauges are dropped",
                       {{"tenant", tenant},
                        {"status", StatusText(result)},
                        {"gauges", std::to_string(batch.gauges)},
                        {"body", FailureText(result)}});
        break;
      case librato::Delivery::kRetry: {
        const std::int64_t wait = RetryDelayNanos(config_.outlet, batch.attempts - 1, result, rng_);
        batch.next_attempt_nanos = after + wait;
        if (batch.next_attempt_nanos - batch.window_end_nanos > horizon) {
          counters.expired += batch.gauges;
          telemetry::Log(telemetry::Level::kError, "gauges expired: retry horizon passed",
                         {{"tenant", tenant},
                          {"status", StatusText(result)},
                          {"gauges", std::to_string(batch.gauges)},
                          {"error", FailureText(result)}});
          break;
        }
        telemetry::Log(telemetry::Level::kWarn, "Librato request failed; will retry",
                       {{"tenant", tenant},
                        {"status", StatusText(result)},
                        {"attempt", std::to_string(batch.attempts)},
                        {"retry_in_ms", std::to_string(wait / kNanosPerMilli)},
                        {"error", FailureText(result)}});
        next = std::min(next, batch.next_attempt_nanos);
        keep.push_back(std::move(batch));
        break;
      }
    }
    metrics_.Add(counters);
  }
  pending_ = std::move(keep);
  EnforceRetryBound();
  std::uint64_t queued = 0;
  for (const Batch& b : pending_) queued += b.gauges;
  metrics_.SetPendingGauges(static_cast<double>(queued));
  return next;
}

void Outlet::RunOnce(bool take_all) {
  absl::StatusOr<std::vector<bucket::ClosedBucket>> closed = store_.TakeClosed(take_all);
  if (!closed.ok()) {
    telemetry::Log(telemetry::Level::kError, "store unavailable; windows not taken",
                   {{"error", closed.status().ToString()}});
  } else {
    Enqueue(*std::move(closed));
  }
  metrics_.SetOpenBuckets(static_cast<double>(store_.OpenBuckets()));
  SendDue();
}

void Outlet::Run(std::stop_token stop, std::int64_t shutdown_timeout_ms) {
  // Relative sleeps in short slices rather than a timed condition-variable wait: a
  // timed wait takes an absolute CLOCK_MONOTONIC deadline, which clock-shifting test
  // tools (faketime) can move so that it never arrives; a stop is still seen within 50 ms.
  constexpr auto kSlice = std::chrono::milliseconds(50);
  while (!stop.stop_requested()) {
    RunOnce();
    auto left = std::chrono::milliseconds(config_.outlet.interval_ms);
    while (left.count() > 0 && !stop.stop_requested()) {
      const auto step = std::min<std::chrono::milliseconds>(left, kSlice);
      std::this_thread::sleep_for(step);
      left -= step;
    }
  }
  Flush(shutdown_timeout_ms);
}

void Outlet::Flush(std::int64_t timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  RunOnce(/*take_all=*/true);
  // Retries during shutdown wait for their backoff, but never past the deadline.
  while (!pending_.empty() && std::chrono::steady_clock::now() < deadline) {
    const std::int64_t now = clock_.NowUnixNanos();
    std::int64_t earliest = INT64_MAX;
    for (const Batch& b : pending_) earliest = std::min(earliest, b.next_attempt_nanos);
    if (earliest > now) {
      const auto wait = std::min<std::chrono::nanoseconds>(
          std::chrono::nanoseconds(earliest - now),
          std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - std::chrono::steady_clock::now()));
      if (wait.count() > 0)
        std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(wait, std::chrono::milliseconds(200)));
      continue;
    }
    SendDue();
  }
  if (!pending_.empty()) {
    telemetry::Counters counters;
    for (const Batch& b : pending_) counters.expired += b.gauges;
    telemetry::Log(telemetry::Level::kError, "shutdown deadline passed; queued gauges dropped",
                   {{"gauges", std::to_string(counters.expired)}});
    metrics_.Add(counters);
    pending_.clear();
  }
}

}  // namespace drainmet::emit
