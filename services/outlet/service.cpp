#include "services/outlet/service.h"

#include "common/base/status_macros.h"
#include "common/telemetry/log.h"

namespace drainmet::outlet {
namespace {

http::Response Text(unsigned status, std::string body) {
  http::Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Service>> Service::Start(config::Config config, ServiceOptions options,
                                                        const base::Clock& clock) {
  DRAINMET_RETURN_IF_ERROR(config::Validate(config));
  DRAINMET_ASSIGN_OR_RETURN(auto listen, http::ParseListenAddress(options.listen));
  std::unique_ptr<Service> service(new Service());
  service->outlet_ =
      std::make_unique<ShardOutlet>(std::move(config), std::move(options.outlet), clock, service->metrics_);
  http::ServerOptions server_options;
  server_options.address = listen.first;
  server_options.port = listen.second;
  server_options.threads = 1;
  server_options.max_body_bytes = 4096;
  Service* self = service.get();
  DRAINMET_ASSIGN_OR_RETURN(
      service->server_,
      http::Server::Start(server_options, [self](const http::Request& r) { return self->Route(r); }));
  DRAINMET_RETURN_IF_ERROR(service->outlet_->Start());
  telemetry::Log(telemetry::Level::kInfo, "drainmet-outlet listening",
                 {{"listen", listen.first + ":" + std::to_string(service->port())},
                  {"owner", service->outlet_->owner()}});
  return service;
}

http::Response Service::Route(const http::Request& request) {
  http::Response response;
  const std::string_view path = request.Path();
  if (request.method != "GET" && request.method != "HEAD") {
    response = Text(405, "method not allowed\n");
    response.headers.emplace_back("Allow", "GET, HEAD");
  } else if (path == "/healthz") {
    response = Text(200, "ok\n");
  } else if (path == "/readyz") {
    response = !stopped_.load() && outlet_->RedisHealthy() ? Text(200, "ready\n")
                                                           : Text(503, "not ready: Redis not answering\n");
  } else if (path == "/metrics") {
    response = Text(200, metrics_.RenderText());
    response.content_type = "text/plain; version=0.0.4; charset=utf-8";
  } else {
    response = Text(404, "not found\n");
  }
  metrics_.CountHttpResponse(response.status);
  return response;
}

void Service::Stop() {
  if (stopped_.exchange(true)) return;
  if (outlet_) outlet_->Stop();
  if (server_) server_->Stop(2000);
  const telemetry::Counters c = metrics_.Snapshot();
  telemetry::Log(telemetry::Level::kInfo, "stopped",
                 {{"posted", std::to_string(c.posted)},
                  {"rejected", std::to_string(c.rejected)},
                  {"expired", std::to_string(c.expired)}});
}

Service::~Service() { Stop(); }

}  // namespace drainmet::outlet
