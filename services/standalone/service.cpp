#include "services/standalone/service.h"

#include <algorithm>
#include <thread>

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
  o.max_series_per_tenant = c.limits.max_series_per_tenant;
  return o;
}

}  // namespace

Service::Service(std::shared_ptr<const drain::TenantDirectory> directory, const base::Clock& clock,
                 const ServiceOptions& options)
    : directory_(std::move(directory)),
      clock_(clock),
      options_(options),
      store_(clock, StoreOptions(directory_->config)),
      sink_(directory_->config, options.out),
      outlet_(directory_->config, store_, sink_, clock, metrics_) {}

absl::StatusOr<std::unique_ptr<Service>> Service::Start(config::Config config, const base::Clock& clock,
                                                        const ServiceOptions& options) {
  DRAINMET_RETURN_IF_ERROR(config::Validate(config));
  DRAINMET_ASSIGN_OR_RETURN(auto listen, http::ParseListenAddress(config.listen));
  auto directory = std::make_shared<const drain::TenantDirectory>(std::move(config));
  std::unique_ptr<Service> service(new Service(directory, clock, options));
  const config::Config& c = directory->config;

  DRAINMET_ASSIGN_OR_RETURN(service->frontend_,
                            drain::Frontend::Start(directory, service->store_, clock, service->metrics_));
  if (!c.syslog.listen.empty() || !c.syslog.tls_listen.empty()) {
    const int threads =
        c.threads > 0 ? c.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    DRAINMET_ASSIGN_OR_RETURN(
        service->syslog_, drain::SyslogListener::Start(std::make_shared<drain::DirectoryHolder>(directory),
                                                       service->store_, clock, service->metrics_, threads));
  }
  Service* self = service.get();
  service->outlet_thread_ = std::jthread([self, timeout = options.shutdown_timeout_ms](std::stop_token stop) {
    self->outlet_.Run(stop, timeout);
  });
  telemetry::Log(telemetry::Level::kInfo, "drainmet listening",
                 {{"listen", listen.first + ":" + std::to_string(service->port())},
                  {"tenants", std::to_string(c.tenants.size())}});
  return service;
}

void Service::Stop() {
  if (stopped_.exchange(true)) return;
  // A service whose Start() failed half-way has no server and no outlet thread.
  if (frontend_ == nullptr) return;
  telemetry::Log(telemetry::Level::kInfo, "shutting down: finishing requests in flight");
  frontend_->Stop();
  // Every complete syslog message already read goes to the store before the final flush.
  if (syslog_ != nullptr) syslog_->Stop(std::min<std::int64_t>(10000, options_.shutdown_timeout_ms / 2));
  telemetry::Log(telemetry::Level::kInfo, "flushing open windows");
  outlet_thread_.request_stop();
  outlet_thread_.join();
  const telemetry::Counters c = metrics_.Snapshot();
  telemetry::Log(telemetry::Level::kInfo, "stopped",
                 {{"points", std::to_string(c.points)},
                  {"posted", std::to_string(c.posted)},
                  {"expired", std::to_string(c.expired)}});
}

absl::Status Service::ReloadTls() {
  absl::Status status;
  if (frontend_ != nullptr) status.Update(frontend_->ReloadTls());
  if (syslog_ != nullptr) status.Update(syslog_->ReloadTls());
  return status;
}

Service::~Service() { Stop(); }

}  // namespace drainmet::standalone
