#include "services/outlet/service.h"

#include <chrono>
#include <thread>

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
  health::HealthServerOptions health_options;
  health_options.listen = options.grpc_listen;
  health_options.service_names = {kHealthServiceName};
  DRAINMET_ASSIGN_OR_RETURN(service->health_, health::HealthServer::Start(std::move(health_options)));
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
  // RedisHealthy() turns false a few seconds after Redis stops answering; 200 ms adds little.
  service->health_poller_ = std::jthread([self](std::stop_token stop) {
    while (!stop.stop_requested()) {
      self->health_->SetServing(!self->stopped_.load() && self->outlet_->RedisHealthy());
      for (int i = 0; i < 4 && !stop.stop_requested(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
  });
  telemetry::Log(telemetry::Level::kInfo, "drainmet-outlet listening",
                 {{"listen", listen.first + ":" + std::to_string(service->port())},
                  {"owner", service->outlet_->owner()},
                  {"grpc", service->health_->address()}});
  return service;
}

namespace {

/// Lets the watcher's callback reach the service once it exists (the watcher starts first).
struct ServiceLink {
  std::mutex mu;
  Service* service = nullptr;  // guarded by mu
};

}  // namespace

void Service::OnServed(const config::ServedConfig& served) {
  if (served.config == nullptr || outlet_ == nullptr) return;
  std::lock_guard<std::mutex> lock(apply_mu_);
  if (served.content_hash == applied_hash_) return;
  config::Config copy = *served.config;
  if (adjust_) adjust_(copy);
  const absl::Status applied = outlet_->UpdateConfig(std::move(copy));
  if (!applied.ok()) {
    telemetry::Log(telemetry::Level::kError, "config from the config service not applied; keeping the last",
                   {{"version", std::to_string(served.version)}, {"error", applied.ToString()}});
    return;
  }
  applied_hash_ = served.content_hash;
  config_version_ = served.version;
}

absl::StatusOr<std::unique_ptr<Service>> Service::StartFollowing(FollowOptions follow, ServiceOptions options,
                                                                 const base::Clock& clock) {
  if (follow.target.empty()) return absl::InvalidArgumentError("config service target: empty");
  auto link = std::make_shared<ServiceLink>();
  config::ConfigWatcherOptions watch;
  watch.target = follow.target;
  watch.initial_file = follow.initial_file;
  watch.initial_backoff = follow.initial_backoff;
  watch.max_backoff = follow.max_backoff;
  watch.on_change = [link](const config::ServedConfig& served) {
    std::lock_guard<std::mutex> lock(link->mu);
    if (link->service != nullptr) link->service->OnServed(served);
  };
  DRAINMET_ASSIGN_OR_RETURN(std::unique_ptr<config::ConfigWatcher> watcher,
                            config::ConfigWatcher::Start(std::move(watch)));
  if (!watcher->WaitForConfig(follow.first_config_timeout)) {
    const absl::Status last = watcher->LastError();
    watcher->Stop();
    return absl::DeadlineExceededError("no configuration from the config service " + follow.target +
                                       " within " + std::to_string(follow.first_config_timeout.count()) +
                                       " ms: " + last.ToString());
  }
  const config::ServedConfig first = watcher->CurrentServed();
  config::Config config = *first.config;
  if (follow.adjust) follow.adjust(config);
  DRAINMET_ASSIGN_OR_RETURN(std::unique_ptr<Service> service,
                            Start(std::move(config), std::move(options), clock));
  service->adjust_ = std::move(follow.adjust);
  {
    std::lock_guard<std::mutex> lock(service->apply_mu_);
    service->applied_hash_ = first.content_hash;
    service->config_version_ = first.version;
  }
  service->watcher_ = std::move(watcher);
  telemetry::Log(telemetry::Level::kInfo, "following the config service",
                 {{"target", follow.target}, {"version", std::to_string(first.version)}});
  {
    std::lock_guard<std::mutex> lock(link->mu);
    link->service = service.get();
  }
  // A change that arrived before the link was set: apply it now (same content: no-op).
  service->OnServed(service->watcher_->CurrentServed());
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
  // Probes learn first; the gRPC server keeps answering NOT_SERVING while windows finish.
  if (health_) health_->ShutdownHealth();
  health_poller_.request_stop();
  if (health_poller_.joinable()) health_poller_.join();
  // No config callback runs after this (the watcher's thread is joined).
  if (watcher_) watcher_->Stop();
  if (outlet_) outlet_->Stop();
  if (server_) server_->Stop(2000);
  if (health_) health_->Stop(std::chrono::milliseconds(1000));
  const telemetry::Counters c = metrics_.Snapshot();
  telemetry::Log(telemetry::Level::kInfo, "stopped",
                 {{"posted", std::to_string(c.posted)},
                  {"rejected", std::to_string(c.rejected)},
                  {"expired", std::to_string(c.expired)}});
}

Service::~Service() { Stop(); }

}  // namespace drainmet::outlet
