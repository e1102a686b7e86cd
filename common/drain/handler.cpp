#include "common/drain/handler.h"

#include <algorithm>
#include <cmath>
#include <future>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "common/drain/encoding.h"
#include "common/drain/processor.h"
#include "common/telemetry/log.h"

namespace drainmet::drain {
namespace {

http::Response Plain(unsigned status, std::string body) {
  http::Response response;
  response.status = status;
  response.body = std::move(body);
  if (!response.body.empty()) response.body += '\n';
  return response;
}

http::Response Unauthorized() {
  http::Response response =
      Plain(401, "unauthorized: the drain URL needs a valid token (https://TOKEN@host/logs)");
  response.headers.emplace_back("WWW-Authenticate", "Basic realm=\"drainmet\"");
  return response;
}

// X-Request-Id values longer than this are not used as a de-duplication key: a UUID has
// 36 bytes, and the key is remembered (limits.dedupe_max_entries of them).
constexpr std::size_t kMaxRequestIdBytes = 128;

/// The de-duplication key of a request (FORMATS.md §1.6, §1.8): Logplex-Frame-Id, else
/// log-shuttle's X-Request-Id (one UUID per batch, reused on its retries); empty: none.
std::string_view DedupeKey(const http::Request& request) {
  if (std::optional<std::string_view> frame_id = request.Header("Logplex-Frame-Id")) return *frame_id;
  const std::string_view request_id = request.Header("X-Request-Id").value_or("");
  if (request_id.size() > kMaxRequestIdBytes) {
    telemetry::LogOnce("long_request_id", "X-Request-Id over 128 bytes not used for de-duplication",
                       {{"remote", request.remote_address}});
    return {};
  }
  return request_id;
}

/// "Log it once with a reason": the first request of the process with each kind of
/// problem logs at warn, later ones at debug (telemetry::LogOnce).
void LogProblems(const std::string& tenant, const telemetry::Counters& c) {
  struct Problem {
    std::uint64_t count;
    const char* reason;
    const char* what;
  };
  const Problem problems[] = {
      {c.bad_timestamp, "bad_timestamp",
       "frames with a missing or unparsable timestamp used the receive time"},
      {c.bad_value, "bad_value", "values that are not numbers (or NaN, infinite, hex, > 1e126) skipped"},
      {c.bad_name, "bad_name", "points with an empty name or a name or source over 255 bytes dropped"},
      {c.late, "late", "points for a window already closed dropped"},
      {c.future, "future", "points more than the tolerance ahead of the clock dropped"},
      {c.series_limit, "series_limit", "open-bucket limit reached; points of new series dropped"},
  };
  for (const Problem& p : problems) {
    if (p.count > 0)
      telemetry::LogOnce(p.reason, p.what, {{"tenant", tenant}, {"count", std::to_string(p.count)}});
  }
}

}  // namespace

std::int64_t TenantRateLimiter::Acquire(std::string_view tenant, std::uint64_t points, std::uint64_t rate,
                                        std::size_t max_tenants) {
  if (rate == 0 || points == 0) return 0;
  const double capacity = static_cast<double>(rate);  // one second's worth
  const std::int64_t now = clock_.NowUnixNanos();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = buckets_.find(absl::string_view(tenant.data(), tenant.size()));
  if (it == buckets_.end()) {
    if (buckets_.size() >= max_tenants) buckets_.clear();
    it = buckets_.emplace(std::string(tenant), Bucket{capacity, now}).first;
  }
  Bucket& b = it->second;
  if (now > b.updated_nanos) {
    const double elapsed = static_cast<double>(now - b.updated_nanos) / base::kNanosPerSecond;
    b.tokens = std::min(capacity, b.tokens + elapsed * static_cast<double>(rate));
  }
  b.updated_nanos = std::max(b.updated_nanos, now);
  const double needed = std::min(static_cast<double>(points), capacity);
  if (b.tokens >= needed) {
    b.tokens -= static_cast<double>(points);
    return 0;
  }
  const double wait = (needed - b.tokens) / static_cast<double>(rate);
  return std::max<std::int64_t>(1, static_cast<std::int64_t>(std::ceil(wait)));
}

std::string_view AuthThrottle::HostOf(std::string_view remote_address) {
  const std::size_t colon = remote_address.rfind(':');
  if (colon == std::string_view::npos) return remote_address;
  // "[::1]:5678" -> "[::1]"; "1.2.3.4:5678" -> "1.2.3.4"; an unbracketed v6 without port
  // (not produced by the server) would lose its last group, which is harmless here.
  return remote_address.substr(0, colon);
}

bool AuthThrottle::Penalized(std::string_view address, std::uint32_t failures,
                             std::int64_t window_nanos) const {
  const std::int64_t now = clock_.NowUnixNanos();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(absl::string_view(address.data(), address.size()));
  if (it == entries_.end()) return false;
  return now - it->second.window_start_nanos < window_nanos && it->second.count >= failures;
}

bool AuthThrottle::RecordFailure(std::string_view address, std::uint32_t failures,
                                 std::int64_t window_nanos) {
  const std::int64_t now = clock_.NowUnixNanos();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(absl::string_view(address.data(), address.size()));
  if (it == entries_.end()) {
    if (entries_.size() >= max_addresses_) {
      absl::erase_if(
          entries_, [&](const auto& entry) { return now - entry.second.window_start_nanos >= window_nanos; });
      if (entries_.size() >= max_addresses_) entries_.erase(entries_.begin());
    }
    it = entries_.emplace(std::string(address), Entry{0, now}).first;
  }
  Entry& e = it->second;
  if (now - e.window_start_nanos >= window_nanos) e = Entry{0, now};
  if (e.count < UINT32_MAX) ++e.count;
  return e.count > failures;
}

std::size_t AuthThrottle::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

DelayedCalls::~DelayedCalls() {
  std::multimap<Deadline, std::function<void()>> left;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  left.swap(pending_);  // the thread has ended: no lock needed
  for (auto& [deadline, call] : left) call();
}

bool DelayedCalls::Schedule(std::chrono::milliseconds delay, std::function<void()> call) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || pending_.size() >= max_pending_) return false;
    pending_.emplace(std::chrono::steady_clock::now() + delay, std::move(call));
    if (!thread_.joinable()) thread_ = std::thread([this] { Run(); });
  }
  cv_.notify_all();
  return true;
}

void DelayedCalls::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    if (pending_.empty()) {
      cv_.wait(lock);
      continue;
    }
    const Deadline first = pending_.begin()->first;
    if (std::chrono::steady_clock::now() < first) {
      cv_.wait_until(lock, first);
      continue;
    }
    std::function<void()> call = std::move(pending_.begin()->second);
    pending_.erase(pending_.begin());
    lock.unlock();
    call();
    lock.lock();
  }
}

DrainHandler::DrainHandler(std::shared_ptr<const TenantDirectory> directory, store::Store& store,
                           const base::Clock& clock, telemetry::Metrics& metrics)
    : DrainHandler(std::make_shared<DirectoryHolder>(std::move(directory)), store, clock, metrics) {}

DrainHandler::DrainHandler(std::shared_ptr<DirectoryHolder> holder, store::Store& store,
                           const base::Clock& clock, telemetry::Metrics& metrics)
    : holder_(std::move(holder)),
      store_(store),
      clock_(clock),
      metrics_(metrics),
      intake_(metrics),
      rate_limiter_(clock),
      auth_throttle_(clock) {}

std::variant<DrainHandler::Resolved, http::Response> DrainHandler::Resolve(
    const TenantDirectory& directory, const http::Request& request) const {
  if (request.method != "POST") {
    http::Response response = Plain(405, "method not allowed: drains POST to /logs");
    response.headers.emplace_back("Allow", "POST");
    return response;
  }
  const std::optional<std::string_view> authorization = request.Header("Authorization");
  if (!authorization) return Unauthorized();
  std::optional<std::size_t> tenant;
  if (const std::optional<config::BasicCredentials> credentials =
          config::ParseBasicAuthorization(*authorization)) {
    tenant = directory.tokens.Authenticate(*credentials);
  } else if (const std::optional<std::string_view> bearer =
                 config::ParseBearerAuthorization(*authorization)) {
    // log-shuttle's `Authorization: Bearer TOKEN` (FORMATS.md §1.8): the same tokens.
    tenant = directory.tokens.Find(*bearer);
  } else {
    return Unauthorized();
  }
  if (!tenant) {
    telemetry::LogOnce("auth_failed", "drain request with unknown credentials refused",
                       {{"remote", request.remote_address}});
    return Unauthorized();
  }
  const config::Tenant& t = directory.config.tenants[*tenant];
  absl::StatusOr<extract::DrainOptions> options =
      extract::ParseDrainQuery(request.Query(), t.default_resolution_seconds);
  if (!options.ok()) return Plain(400, "bad drain option: " + std::string(options.status().message()));
  const BodyEncoding encoding = ParseContentEncoding(request.Header("Content-Encoding"));
  if (encoding == BodyEncoding::kUnsupported) {
    intake_.unsupported_encoding.Increment();
    telemetry::LogOnce(
        "unsupported_encoding", "drain request with an unsupported Content-Encoding refused",
        {{"tenant", t.id}, {"encoding", std::string(request.Header("Content-Encoding").value_or(""))}});
    return Plain(415, "unsupported Content-Encoding: send gzip or identity");
  }
  return Resolved{*tenant, *std::move(options), encoding == BodyEncoding::kGzip};
}

std::optional<http::Response> DrainHandler::CheckHeaders(const http::Request& request) const {
  const std::shared_ptr<const TenantDirectory> directory = holder_->Get();
  auto resolved = Resolve(*directory, request);
  if (auto* response = std::get_if<http::Response>(&resolved)) {
    if (response->status == 401) {
      const config::Limits& limits = directory->config.limits;
      const std::string_view address = AuthThrottle::HostOf(request.remote_address);
      const std::int64_t window = limits.auth_failure_window_seconds * base::kNanosPerSecond;
      // An address over the bound is answered by HandleAsync, late, from a timer.
      if (auth_throttle_.Penalized(address, limits.auth_failures_before_delay, window)) return std::nullopt;
      auth_throttle_.RecordFailure(address, limits.auth_failures_before_delay, window);
    }
    return std::move(*response);
  }
  return std::nullopt;
}

http::Response DrainHandler::Handle(const http::Request& request) {
  std::promise<http::Response> promise;
  std::future<http::Response> answer = promise.get_future();
  HandleAsync(request, [&promise](http::Response response) { promise.set_value(std::move(response)); });
  return answer.get();
}

void DrainHandler::HandleAsync(const http::Request& request,
                               const std::function<void(http::Response)>& respond) {
  // One snapshot for the whole request: a Set() meanwhile applies to the next request.
  const std::shared_ptr<const TenantDirectory> directory = holder_->Get();
  auto resolved = Resolve(*directory, request);
  if (auto* response = std::get_if<http::Response>(&resolved)) {
    if (response->status == 401) {
      const config::Limits& limits = directory->config.limits;
      const std::string_view address = AuthThrottle::HostOf(request.remote_address);
      if (auth_throttle_.RecordFailure(address, limits.auth_failures_before_delay,
                                       limits.auth_failure_window_seconds * base::kNanosPerSecond)) {
        intake_.auth_delayed.Increment();
        telemetry::LogOnce("auth_delayed",
                           "repeated auth failures from one address; its 401s are answered late",
                           {{"remote", std::string(address)}});
        if (delayed_.Schedule(std::chrono::milliseconds(limits.auth_failure_delay_ms),
                              [respond, answer = *response] { respond(answer); })) {
          return;
        }
      }
    }
    return respond(std::move(*response));
  }
  const Resolved& r = std::get<Resolved>(resolved);
  const std::string& tenant = directory->config.tenants[r.tenant_index].id;
  const std::string_view frame_id = DedupeKey(request);

  telemetry::Counters counters;
  // A retried frame skips parsing; Ingest below decides for good (two copies may race).
  absl::StatusOr<bool> seen = store_.SeenFrame(tenant, frame_id);
  if (seen.ok() && *seen) {
    counters.duplicate_request = 1;
    metrics_.Add(counters);
    return respond(Plain(204, ""));
  }

  const std::int64_t now = clock_.NowUnixNanos();
  BodyTimes times;
  times.received_at_nanos = now;
  times.now_nanos = now;
  times.future_tolerance_nanos = directory->config.limits.future_tolerance_seconds * base::kNanosPerSecond;
  std::string_view body = request.body;
  // The inflated body lives only until ProcessBody returns; one buffer per thread, reused.
  thread_local std::string inflated;
  if (r.gzip) {
    const std::uint64_t limit = directory->config.limits.max_inflated_body_bytes;
    const absl::Status status = InflateGzip(request.body, limit, inflated);
    if (absl::IsResourceExhausted(status)) {
      intake_.inflated_too_large.Increment();
      telemetry::LogOnce("inflated_too_large",
                         "gzip drain body over limits.max_inflated_body_bytes refused (413)",
                         {{"tenant", tenant}, {"limit", std::to_string(limit)}});
      return respond(Plain(413, "request body too large once inflated"));
    }
    if (!status.ok()) {
      intake_.bad_gzip.Increment();
      telemetry::LogOnce("bad_gzip", "drain body sent as gzip does not inflate; refused (400)",
                         {{"tenant", tenant}, {"error", std::string(status.message())}});
      return respond(Plain(400, "body is not valid gzip"));
    }
    body = inflated;
  }
  // The request's table: the one the store gave back on this thread, if it did (its slots
  // are in this core's cache: BucketMap::TakeSpare), else a new one that starts at the
  // size of this thread's previous request's (at most kMaxReservedBuckets): with many
  // series a body fills thousands of buckets, and a table grown from empty rehashes and
  // moves every bucket about a dozen times on the way.
  constexpr std::size_t kMaxReservedBuckets = 1 << 16;
  thread_local std::size_t previous_buckets = 0;
  bucket::BucketMap partials = bucket::BucketMap::TakeSpare();
  partials.set_log_points(store_.PrefersPointLog());
  if (previous_buckets > 0 && !partials.log_points()) partials.map().reserve(previous_buckets);
  BodyBounds bounds;
  bounds.max_frames = directory->config.limits.max_frames_per_request;
  bounds.max_frame_bytes = directory->config.limits.max_line_bytes;
  const BodySkips skips = ProcessBody(tenant, r.options, body, times, partials, counters, bounds);
  previous_buckets = std::min(partials.size(), kMaxReservedBuckets);
  if (skips.too_many_frames > 0) {
    intake_.too_many_frames.Increment(static_cast<double>(skips.too_many_frames));
    telemetry::LogOnce("too_many_frames",
                       "frames beyond limits.max_frames_per_request skipped; the first ones used",
                       {{"tenant", tenant}, {"count", std::to_string(skips.too_many_frames)}});
  }
  if (skips.line_too_long > 0) {
    intake_.line_too_long.Increment(static_cast<double>(skips.line_too_long));
    telemetry::LogOnce("http_line_too_long", "drain frames longer than limits.max_line_bytes skipped",
                       {{"tenant", tenant}, {"count", std::to_string(skips.line_too_long)}});
  }
  // A buffer that held a very large body is not kept for the thread's life.
  if (inflated.capacity() > (4u << 20)) std::string().swap(inflated);

  // Per-tenant rate limit, on the points this request would store (limits.tenant_points_per_second).
  const std::uint64_t points = partials.points();
  const std::uint64_t rate = directory->config.limits.tenant_points_per_second;
  if (const std::int64_t retry_after =
          rate_limiter_.Acquire(tenant, points, rate, directory->config.tenants.size() + 16);
      retry_after > 0) {
    intake_.rate_limited.Increment();
    telemetry::LogOnce("rate_limited",
                       "drain request over limits.tenant_points_per_second answered 429; Logplex retries it",
                       {{"tenant", tenant}, {"limit", std::to_string(rate)}});
    http::Response response = Plain(429, "too many points for this tenant, retry later");
    response.headers.emplace_back("Retry-After", std::to_string(retry_after));
    return respond(std::move(response));
  }

  store_.IngestAsync(tenant, std::string(frame_id), std::move(partials),
                     [this, tenant, counters, respond](absl::StatusOr<store::IngestResult> ingested) mutable {
                       respond(Answer(tenant, counters, std::move(ingested)));
                     });
}

http::Response DrainHandler::Answer(const std::string& tenant, telemetry::Counters counters,
                                    absl::StatusOr<store::IngestResult> ingested) {
  if (!ingested.ok()) {
    // Unavailable: Redis down or slow, or the receiver full or stopping; Aborted: another
    // copy of the frame is being written. Either way Logplex retries the frame later.
    telemetry::LogOnce("store_unavailable", "store unavailable; drain request answered 503",
                       {{"tenant", tenant}, {"error", ingested.status().ToString()}});
    http::Response response = Plain(503, "store unavailable, retry later");
    response.headers.emplace_back("Retry-After", "1");
    return response;
  }
  if (ingested->duplicate) {
    // The counters of a retried request were counted with its first copy.
    telemetry::Counters duplicate;
    duplicate.duplicate_request = 1;
    metrics_.Add(duplicate);
    return Plain(204, "");
  }
  counters.points += ingested->applied_points;
  counters.late += ingested->late_points;
  counters.series_limit += ingested->series_limit_points;
  LogProblems(tenant, counters);
  metrics_.Add(counters);
  return Plain(204, "");
}

}  // namespace drainmet::drain
