#include "common/drain/handler.h"

#include <future>
#include <string>

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

DrainHandler::DrainHandler(std::shared_ptr<const TenantDirectory> directory, store::Store& store,
                           const base::Clock& clock, telemetry::Metrics& metrics)
    : DrainHandler(std::make_shared<DirectoryHolder>(std::move(directory)), store, clock, metrics) {}

DrainHandler::DrainHandler(std::shared_ptr<DirectoryHolder> holder, store::Store& store,
                           const base::Clock& clock, telemetry::Metrics& metrics)
    : holder_(std::move(holder)), store_(store), clock_(clock), metrics_(metrics) {}

std::variant<DrainHandler::Resolved, http::Response> DrainHandler::Resolve(const TenantDirectory& directory,
                                                                           const http::Request& request) {
  if (request.method != "POST") {
    http::Response response = Plain(405, "method not allowed: drains POST to /logs");
    response.headers.emplace_back("Allow", "POST");
    return response;
  }
  const std::optional<std::string_view> authorization = request.Header("Authorization");
  if (!authorization) return Unauthorized();
  const std::optional<config::BasicCredentials> credentials = config::ParseBasicAuthorization(*authorization);
  if (!credentials) return Unauthorized();
  const std::optional<std::size_t> tenant = directory.tokens.Authenticate(*credentials);
  if (!tenant) {
    telemetry::LogOnce("auth_failed", "drain request with unknown credentials refused",
                       {{"remote", request.remote_address}});
    return Unauthorized();
  }
  const config::Tenant& t = directory.config.tenants[*tenant];
  absl::StatusOr<extract::DrainOptions> options =
      extract::ParseDrainQuery(request.Query(), t.default_resolution_seconds);
  if (!options.ok()) return Plain(400, "bad drain option: " + std::string(options.status().message()));
  return Resolved{*tenant, *std::move(options)};
}

std::optional<http::Response> DrainHandler::CheckHeaders(const http::Request& request) const {
  const std::shared_ptr<const TenantDirectory> directory = holder_->Get();
  auto resolved = Resolve(*directory, request);
  if (auto* response = std::get_if<http::Response>(&resolved)) return std::move(*response);
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
  if (auto* response = std::get_if<http::Response>(&resolved)) return respond(std::move(*response));
  const Resolved& r = std::get<Resolved>(resolved);
  const std::string& tenant = directory->config.tenants[r.tenant_index].id;
  const std::string_view frame_id = request.Header("Logplex-Frame-Id").value_or("");

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
  bucket::BucketMap partials;
  ProcessBody(tenant, r.options, request.body, times, partials, counters);

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
