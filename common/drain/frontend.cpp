#include "common/drain/frontend.h"

#include <algorithm>
#include <thread>

#include "common/base/status_macros.h"

namespace drainmet::drain {
namespace {

http::Response Text(unsigned status, std::string body) {
  http::Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

}  // namespace

Frontend::Frontend(std::shared_ptr<DirectoryHolder> holder, store::Store& store, const base::Clock& clock,
                   telemetry::Metrics& metrics, ReadyCheck ready)
    : metrics_(metrics), handler_(std::move(holder), store, clock, metrics), ready_check_(std::move(ready)) {}

Frontend::~Frontend() { Stop(); }

absl::StatusOr<std::unique_ptr<Frontend>> Frontend::Start(std::shared_ptr<const TenantDirectory> directory,
                                                          store::Store& store, const base::Clock& clock,
                                                          telemetry::Metrics& metrics, ReadyCheck ready) {
  return Start(std::make_shared<DirectoryHolder>(std::move(directory)), store, clock, metrics,
               std::move(ready));
}

absl::StatusOr<std::unique_ptr<Frontend>> Frontend::Start(std::shared_ptr<DirectoryHolder> holder,
                                                          store::Store& store, const base::Clock& clock,
                                                          telemetry::Metrics& metrics, ReadyCheck ready) {
  const std::shared_ptr<const TenantDirectory> directory = holder->Get();
  const config::Config& c = directory->config;
  DRAINMET_ASSIGN_OR_RETURN(auto listen, http::ParseListenAddress(c.listen));
  std::unique_ptr<Frontend> frontend(
      new Frontend(std::move(holder), store, clock, metrics, std::move(ready)));
  http::ServerOptions options;
  options.address = listen.first;
  options.port = listen.second;
  options.threads =
      c.threads > 0 ? c.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  options.max_body_bytes = c.limits.max_body_bytes;
  options.max_header_bytes = c.limits.max_header_bytes;
  options.max_header_count = c.limits.max_header_count;
  options.read_timeout_ms = c.limits.read_timeout_seconds * 1000;
  options.tls_cert_file = c.tls_cert_file;  // both empty: plain HTTP
  options.tls_key_file = c.tls_key_file;
  options.metrics = &metrics;
  Frontend* self = frontend.get();
  DRAINMET_ASSIGN_OR_RETURN(
      frontend->server_,
      http::Server::StartAsync(
          options,
          [self](const http::Request& r, http::Responder respond) { self->Route(r, std::move(respond)); },
          [self](const http::Request& r) -> std::optional<http::Response> {
            if (r.Path() != kDrainPath) return std::nullopt;
            std::optional<http::Response> refused = self->handler_.CheckHeaders(r);
            if (refused) self->metrics_.CountHttpResponse(refused->status);
            return refused;
          }));
  frontend->serving_ = true;
  return frontend;
}

void Frontend::Route(const http::Request& request, http::Responder respond) {
  if (request.Path() == kDrainPath) {
    // Answered when the store has the points (at the receiver's flush), off this thread.
    handler_.HandleAsync(request, [this, respond = std::move(respond)](http::Response response) {
      metrics_.CountHttpResponse(response.status);
      respond(std::move(response));
    });
    return;
  }
  http::Response response = Route(request);
  metrics_.CountHttpResponse(response.status);
  respond(std::move(response));
}

http::Response Frontend::Route(const http::Request& request) {
  http::Response response;
  const std::string_view path = request.Path();
  if (request.method != "GET" && request.method != "HEAD") {
    response = Text(405, "method not allowed\n");
    response.headers.emplace_back("Allow", "GET, HEAD");
  } else if (path == "/healthz") {
    response = Text(200, "ok\n");
  } else if (path == "/readyz") {
    const bool ready = serving_ && (!ready_check_ || ready_check_());
    response = ready ? Text(200, "ready\n") : Text(503, "not ready\n");
  } else if (path == "/metrics") {
    response = Text(200, metrics_.RenderText());
    response.content_type = "text/plain; version=0.0.4; charset=utf-8";
  } else {
    response = Text(404, "not found: drains POST to /logs\n");
  }
  return response;
}

void Frontend::Stop() {
  serving_ = false;
  if (server_ != nullptr) server_->Stop();
}

}  // namespace drainmet::drain
