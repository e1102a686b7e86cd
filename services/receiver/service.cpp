#include "services/receiver/service.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <optional>
#include <thread>

#include "common/base/status_macros.h"
#include "common/telemetry/log.h"

namespace drainmet::receiver {

absl::StatusOr<store::RedisStoreOptions> RedisStoreOptionsFrom(const config::Config& config) {
  store::RedisStoreOptions options;
  options.shards = config.redis.shards;
  options.grace_seconds = config.grace_seconds;
  options.protocol.dedupe_ttl = std::chrono::seconds(config.limits.dedupe_window_seconds);
  options.protocol.write_allowance = config::ReceiverWriteAllowance(config);
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
    : holder_(std::make_shared<drain::DirectoryHolder>(std::move(directory))),
      receiver_id_(store::NewReceiverId()),
      store_(std::move(store_options)) {
  const config::Receiver& receiver = holder_->Get()->config.receiver;
  store::PreAggregatorOptions options;
  options.flush_interval = std::chrono::milliseconds(receiver.flush_interval_ms);
  options.flush_delay = std::chrono::milliseconds(receiver.flush_delay_ms);
  options.max_series = receiver.max_series_in_memory;
  // Fixed at start, as the other pre-aggregation bounds.
  options.max_series_per_tenant = holder_->Get()->config.limits.max_series_per_tenant;
  options.registry = &registry_;
  aggregator_ = std::make_unique<store::PreAggregator>(store_, options);
}

bool Service::PublishWatermark(std::size_t server) {
  const config::Receiver& receiver = holder_->Get()->config.receiver;
  // The watermark and the clock offset it is converted with: every request received
  // before it (on this host's clock) is written or failed.
  const std::int64_t watermark = registry_.Watermark();
  const std::optional<std::int64_t> offset = store_.WatermarkOffsetNanos(server);
  const std::int64_t ms = offset ? (watermark + *offset) / 1'000'000 : 0;
  if (server == 0) {
    const std::int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
    metrics_.SetWatermarkLagSeconds(std::max<std::int64_t>(0, now - watermark) / 1e9);
  }
  const absl::Status status =
      store_.PublishWatermark(server, receiver_id_, ms, std::chrono::milliseconds(receiver.watermark_ttl_ms));
  metrics_.CountWatermarkPublish(status.ok() ? "ok" : "error");
  return status.ok();
}

void Service::ReportPreAggregation() {
  const store::PreAggregatorStats now = aggregator_->stats();
  telemetry::PreAggregationDelta delta;
  delta.flushes_failed = now.flush_errors - reported_.flush_errors;
  delta.flushes_ok = (now.flushes - reported_.flushes) - delta.flushes_failed;
  delta.flushes_unmerged = now.flushes_unmerged - reported_.flushes_unmerged;
  delta.records_written = now.records_written - reported_.records_written;
  delta.elements_written = now.elements_written - reported_.elements_written;
  delta.requests_refused = now.requests_refused - reported_.requests_refused;
  delta.conflicts = now.conflicts - reported_.conflicts;
  metrics_.AddPreAggregation(delta, static_cast<double>(now.queued_buckets),
                             static_cast<double>(aggregator_->OpenBuckets()));
  reported_ = now;
}

absl::StatusOr<std::unique_ptr<Service>> Service::Start(config::Config config, const base::Clock& clock,
                                                        ServiceOptions options) {
  DRAINMET_RETURN_IF_ERROR(config::Validate(config));
  DRAINMET_ASSIGN_OR_RETURN(store::RedisStoreOptions store_options, RedisStoreOptionsFrom(config));
  auto directory = std::make_shared<const drain::TenantDirectory>(std::move(config));
  std::unique_ptr<Service> service(new Service(directory, std::move(store_options)));
  Service* self = service.get();
  health::HealthServerOptions health_options;
  health_options.listen = options.grpc_listen;
  health_options.service_names = {kHealthServiceName};
  DRAINMET_ASSIGN_OR_RETURN(self->health_, health::HealthServer::Start(std::move(health_options)));
  self->pinger_ = std::jthread([self](std::stop_token stop) {
    bool was_ok = true;
    while (!stop.stop_requested()) {
      const absl::Status ping = self->store_.Ping();
      self->redis_ok_ = ping.ok();
      self->ReportPreAggregation();
      self->UpdateHealth();
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
  // The first watermark goes out before any request is accepted (best effort per server:
  // one that does not answer is retried every interval; its shards' requests fail 503
  // meanwhile anyway). The clock offsets first, or the first publication would say 0.
  (void)self->store_.Ping();
  const std::int64_t interval_ms = directory->config.receiver.watermark_interval_ms;
  for (std::size_t server = 0; server < directory->config.redis.servers.size(); ++server) {
    self->PublishWatermark(server);
    self->publishers_.emplace_back([self, server, interval_ms](std::stop_token stop) {
      std::mutex mu;
      std::condition_variable_any cv;
      for (;;) {
        {
          std::unique_lock<std::mutex> lock(mu);
          cv.wait_for(lock, stop, std::chrono::milliseconds(interval_ms), [] { return false; });
        }
        if (stop.stop_requested()) return;
        self->PublishWatermark(server);
      }
    });
  }
  DRAINMET_ASSIGN_OR_RETURN(self->frontend_,
                            drain::Frontend::Start(self->holder_, *self->aggregator_, clock, self->metrics_,
                                                   [self] { return self->redis_ok_.load(); }));
  const config::Config& c = directory->config;
  if (!c.syslog.listen.empty() || !c.syslog.tls_listen.empty()) {
    const int threads =
        c.threads > 0 ? c.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    DRAINMET_ASSIGN_OR_RETURN(self->syslog_, drain::SyslogListener::Start(self->holder_, *self->aggregator_,
                                                                          clock, self->metrics_, threads));
  }
  self->started_ = true;
  self->UpdateHealth();
  telemetry::Log(telemetry::Level::kInfo, "drainmet-receiver listening",
                 {{"listen", directory->config.listen.substr(0, directory->config.listen.rfind(':')) + ":" +
                                 std::to_string(service->port())},
                  {"grpc", self->health_->address()},
                  {"shards", std::to_string(directory->config.redis.shards)},
                  {"redis_servers", std::to_string(directory->config.redis.servers.size())}});
  return service;
}

void Service::UpdateHealth() {
  std::lock_guard<std::mutex> lock(health_mu_);
  health_->SetServing(redis_ok_.load() && started_.load() && !stopped_.load());
}

namespace {

/// Lets the watcher's callback reach the service once it exists (the watcher starts first).
struct ServiceLink {
  std::mutex mu;
  Service* service = nullptr;  // guarded by mu
};

}  // namespace

absl::Status Service::ApplyConfig(config::Config config) {
  DRAINMET_RETURN_IF_ERROR(config::Validate(config));
  std::lock_guard<std::mutex> lock(apply_mu_);
  const std::shared_ptr<const drain::TenantDirectory> now = holder_->Get();
  const std::string restart = config::ReceiverRestartOnlyChanges(now->config, config);
  if (!restart.empty()) {
    telemetry::Log(telemetry::Level::kWarn, "config change needs restart; keeping the values in use",
                   {{"keys", restart}});
  }
  // Keep what is fixed at start, so the directory always describes what runs.
  config::KeepReceiverRestartOnly(now->config, config);
  if (config.log_level != now->config.log_level) {
    telemetry::Level level;
    if (telemetry::ParseLogLevel(config.log_level, &level)) telemetry::SetLogLevel(level);
  }
  const std::size_t tenants = config.tenants.size();
  holder_->Set(std::make_shared<const drain::TenantDirectory>(std::move(config)));
  telemetry::Log(telemetry::Level::kInfo, "config applied", {{"tenants", std::to_string(tenants)}});
  return absl::OkStatus();
}

void Service::OnServed(const config::ServedConfig& served) {
  if (served.config == nullptr) return;
  {
    std::lock_guard<std::mutex> lock(apply_mu_);
    if (served.content_hash == applied_hash_) return;
  }
  config::Config copy = *served.config;
  if (adjust_) adjust_(copy);
  const absl::Status applied = ApplyConfig(std::move(copy));
  if (!applied.ok()) {
    telemetry::Log(telemetry::Level::kError, "config from the config service not applied; keeping the last",
                   {{"version", std::to_string(served.version)}, {"error", applied.ToString()}});
    return;
  }
  std::lock_guard<std::mutex> lock(apply_mu_);
  applied_hash_ = served.content_hash;
  config_version_ = served.version;
}

absl::StatusOr<std::unique_ptr<Service>> Service::StartFollowing(FollowOptions options,
                                                                 const base::Clock& clock,
                                                                 ServiceOptions service_options) {
  if (options.target.empty()) return absl::InvalidArgumentError("config service target: empty");
  auto link = std::make_shared<ServiceLink>();
  config::ConfigWatcherOptions watch;
  watch.target = options.target;
  watch.initial_file = options.initial_file;
  watch.initial_backoff = options.initial_backoff;
  watch.max_backoff = options.max_backoff;
  watch.on_change = [link](const config::ServedConfig& served) {
    std::lock_guard<std::mutex> lock(link->mu);
    if (link->service != nullptr) link->service->OnServed(served);
  };
  DRAINMET_ASSIGN_OR_RETURN(std::unique_ptr<config::ConfigWatcher> watcher,
                            config::ConfigWatcher::Start(std::move(watch)));
  if (!watcher->WaitForConfig(options.first_config_timeout)) {
    const absl::Status last = watcher->LastError();
    watcher->Stop();
    return absl::DeadlineExceededError("no configuration from the config service " + options.target +
                                       " within " + std::to_string(options.first_config_timeout.count()) +
                                       " ms: " + last.ToString());
  }
  const config::ServedConfig first = watcher->CurrentServed();
  config::Config config = *first.config;
  if (options.adjust) options.adjust(config);
  DRAINMET_ASSIGN_OR_RETURN(std::unique_ptr<Service> service,
                            Start(std::move(config), clock, std::move(service_options)));
  service->adjust_ = std::move(options.adjust);
  {
    std::lock_guard<std::mutex> lock(service->apply_mu_);
    service->applied_hash_ = first.content_hash;
    service->config_version_ = first.version;
  }
  service->watcher_ = std::move(watcher);
  telemetry::Log(telemetry::Level::kInfo, "following the config service",
                 {{"target", options.target}, {"version", std::to_string(first.version)}});
  {
    std::lock_guard<std::mutex> lock(link->mu);
    link->service = service.get();
  }
  // A change that arrived before the link was set: apply it now (same content: no-op).
  service->OnServed(service->watcher_->CurrentServed());
  return service;
}

void Service::Stop() {
  if (stopped_.exchange(true)) return;
  // Probes learn first; the gRPC server keeps answering NOT_SERVING while requests drain.
  if (health_ != nullptr) health_->ShutdownHealth();
  // No config callback runs after this (the watcher's thread is joined).
  if (watcher_ != nullptr) watcher_->Stop();
  // Requests waiting for the flush are written at once rather than after the interval.
  aggregator_->FlushSoon();
  if (frontend_ != nullptr) {
    telemetry::Log(telemetry::Level::kInfo, "shutting down: finishing requests in flight");
    frontend_->Stop();
  }
  // Every complete syslog message already read is stored (the pre-aggregator still runs).
  if (syslog_ != nullptr) {
    aggregator_->FlushSoon();
    syslog_->Stop();
  }
  // Whatever a request still waits for (the frontend's stop timed out) is written and
  // answered now, before the server that holds the answers goes away.
  aggregator_->Stop();
  // Nothing is in flight any more: withdraw the watermark, so sealing need not wait for it
  // to expire.
  for (std::jthread& publisher : publishers_) publisher.request_stop();
  for (std::jthread& publisher : publishers_) {
    if (publisher.joinable()) publisher.join();
  }
  for (std::size_t server = 0; server < publishers_.size(); ++server) {
    const absl::Status withdrawn = store_.WithdrawWatermark(server, receiver_id_);
    if (!withdrawn.ok()) {
      telemetry::Log(telemetry::Level::kWarn, "watermark not withdrawn; it expires by itself",
                     {{"server", std::to_string(server)}, {"error", withdrawn.ToString()}});
    }
  }
  publishers_.clear();
  pinger_.request_stop();
  if (pinger_.joinable()) pinger_.join();
  ReportPreAggregation();
  if (health_ != nullptr) health_->Stop(std::chrono::milliseconds(1000));
}

absl::Status Service::ReloadTls() {
  absl::Status status;
  if (frontend_ != nullptr) status.Update(frontend_->ReloadTls());
  if (syslog_ != nullptr) status.Update(syslog_->ReloadTls());
  return status;
}

Service::~Service() { Stop(); }

}  // namespace drainmet::receiver
