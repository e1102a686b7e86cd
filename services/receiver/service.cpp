#include "services/receiver/service.h"

#include <chrono>

#include "common/base/status_macros.h"
#include "common/telemetry/log.h"

namespace drainmet::receiver {

absl::StatusOr<store::RedisStoreOptions> RedisStoreOptionsFrom(const config::Config& config) {
  store::RedisStoreOptions options;
  options.shards = config.redis.shards;
  options.grace_seconds = config.grace_seconds;
  options.protocol.dedupe_ttl = std::chrono::seconds(config.limits.dedupe_window_seconds);
  for (const std::string& server : config.redis.servers) {
    DRAINMET_ASSIGN_OR_RETURN(config::RedisAddress address, config::ParseRedisAddress(server));
    store::RedisClient::Options client;
    client.unix_socket = address.unix_socket;
    client.host = address.host;
    client.port = address.port;
    client.connect_timeout = std::chrono::milliseconds(config.redis.connect_timeout_ms);
    client.command_timeout = std::chrono::milliseconds(config.redis.command_timeout_ms);
    options.servers.push_back(std::move(client));
  }
  return options;
}

Service::Service(std::shared_ptr<const drain::TenantDirectory> directory,
                 store::RedisStoreOptions store_options)
    : directory_(std::move(directory)), store_(std::move(store_options)) {}

absl::StatusOr<std::unique_ptr<Service>> Service::Start(config::Config config, const base::Clock& clock) {
  DRAINMET_RETURN_IF_ERROR(config::Validate(config));
  DRAINMET_ASSIGN_OR_RETURN(store::RedisStoreOptions store_options, RedisStoreOptionsFrom(config));
  auto directory = std::make_shared<const drain::TenantDirectory>(std::move(config));
  std::unique_ptr<Service> service(new Service(directory, std::move(store_options)));
  Service* self = service.get();
  self->pinger_ = std::jthread([self](std::stop_token stop) {
    bool was_ok = true;
    while (!stop.stop_requested()) {
      const absl::Status ping = self->store_.Ping();
      self->redis_ok_ = ping.ok();
      if (ping.ok() != was_ok) {
        if (ping.ok()) {
          telemetry::Log(telemetry::Level::kInfo, "redis reachable");
        } else {
          telemetry::Log(telemetry::Level::kError, "redis unreachable: drain requests answer 503",
                         {{"error", ping.ToString()}});
        }
        was_ok = ping.ok();
      }
      for (int i = 0; i < 20 && !stop.stop_requested(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
  });
  DRAINMET_ASSIGN_OR_RETURN(self->frontend_,
                            drain::Frontend::Start(directory, self->store_, clock, self->metrics_,
                                                   [self] { return self->redis_ok_.load(); }));
  telemetry::Log(telemetry::Level::kInfo, "drainmet-receiver listening",
                 {{"listen", directory->config.listen.substr(0, directory->config.listen.rfind(':')) + ":" +
                                 std::to_string(service->port())},
                  {"shards", std::to_string(directory->config.redis.shards)},
                  {"redis_servers", std::to_string(directory->config.redis.servers.size())}});
  return service;
}

void Service::Stop() {
  if (stopped_.exchange(true)) return;
  if (frontend_ != nullptr) {
    telemetry::Log(telemetry::Level::kInfo, "shutting down: finishing requests in flight");
    frontend_->Stop();
  }
  pinger_.request_stop();
  if (pinger_.joinable()) pinger_.join();
}

Service::~Service() { Stop(); }

}  // namespace drainmet::receiver
