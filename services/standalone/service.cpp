#include "services/standalone/service.h"

#include "common/base/status_macros.h"
#include "common/telemetry/log.h"

namespace drainmet::standalone {
namespace {

store::MemoryStoreOptions StoreOptions(const config::Config& c) {
  store::MemoryStoreOptions o;
  o.grace_seconds = c.grace_seconds;
  o.max_open_buckets = c.limits.max_open_buckets;
  o.dedupe_window_seconds = c.limits.dedupe_window_seconds;
  o.dedupe_max_entries = c.limits.dedupe_max_entries;
  return o;
}

http::Response Text(unsigned status, std::string body) {
  http::Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

}  // namespace

Service::Service(std::shared_ptr<const drain::TenantDirectory> directory, const base::Clock& clock,
                 const ServiceOptions& options)
    : directory_(std::move(directory)),
      clock_(clock),
      options_(options),
      store_(clock, StoreOptions(directory_->config)),
      handler_(directory_, store_, clock, metrics_),
      sink_(directory_->config, options.out),
      outlet_(directory_->config, store_, sink_, clock, metrics_) {}

absl::StatusOr<std::unique_ptr<Service>> Service::Start(config::Config config, const base::Clock& clock,
                                                        const ServiceOptions& options) {
  DRAINMET_RETURN_IF_ERROR(config::Validate(config));
  DRAINMET_ASSIGN_OR_RETURN(auto listen, http::ParseListenAddress(config.listen));
  auto directory = std::make_shared<const drain::TenantDirectory>(std::move(config));
  std::unique_ptr<Service> service(new Service(directory, clock, options));
  const config::Config& c = directory->config;

  http::ServerOptions server_options;
  server_options.address = listen.first;
  server_options.port = listen.second;
  server_options.threads =
      c.threads > 0 ? c.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  server_options.max_body_bytes = c.limits.max_body_bytes;
  server_options.max_header_bytes = c.limits.max_header_bytes;
  server_options.read_timeout_ms = c.limits.read_timeout_seconds * 1000;
  Service* self = service.get();
  DRAINMET_ASSIGN_OR_RETURN(service->server_,
                            http::Server::Start(
                                server_options, [self](const http::Request& r) { return self->Route(r); },
                                [self](const http::Request& r) -> std::optional<http::Response> {
                                  if (r.Path() != drain::kDrainPath) return std::nullopt;
                                  std::optional<http::Response> refused = self->handler_.CheckHeaders(r);
                                  if (refused) self->metrics_.CountHttpResponse(refused->status);
                                  return refused;
                                }));
  service->outlet_thread_ = std::jthread([self, timeout = options.shutdown_timeout_ms](std::stop_token stop) {
    self->outlet_.Run(stop, timeout);
  });
  service->ready_ = true;
  telemetry::Log(telemetry::Level::kInfo, "drainmet listening",
                 {{"listen", listen.first + ":" + std::to_string(service->port())},
                  {"tenants", std::to_string(c.tenants.size())}});
  return service;
}

http::Response Service::Route(const http::Request& request) {
  http::Response response;
  const std::string_view path = request.Path();
  if (path == drain::kDrainPath) {
    response = handler_.Handle(request);
  } else if (request.method != "GET" && request.method != "HEAD") {
    response = Text(405, "method not allowed\n");
    response.headers.emplace_back("Allow", "GET, HEAD");
  } else if (path == "/healthz") {
    response = Text(200, "ok\n");
  } else if (path == "/readyz") {
    response = ready_ ? Text(200, "ready\n") : Text(503, "not ready\n");
  } else if (path == "/metrics") {
    response = Text(200, metrics_.RenderText());
    response.content_type = "text/plain; version=0.0.4; charset=utf-8";
  } else {
    response = Text(404, "not found: drains POST to /logs\n");
  }
  metrics_.CountHttpResponse(response.status);
  return response;
}

void Service::Stop() {
  if (stopped_.exchange(true)) return;
  // A service whose Start() failed half-way has no server and no outlet thread.
  if (server_ == nullptr) return;
  ready_ = false;
  telemetry::Log(telemetry::Level::kInfo, "shutting down: finishing requests in flight");
  server_->Stop();
  telemetry::Log(telemetry::Level::kInfo, "flushing open windows");
  outlet_thread_.request_stop();
  outlet_thread_.join();
  const telemetry::Counters c = metrics_.Snapshot();
  telemetry::Log(telemetry::Level::kInfo, "stopped",
                 {{"points", std::to_string(c.points)},
                  {"posted", std::to_string(c.posted)},
                  {"expired", std::to_string(c.expired)}});
}

Service::~Service() { Stop(); }

}  // namespace drainmet::standalone
