#pragma once
// `drainmet run`: the whole pipeline in one process on the in-memory store: the drain
// endpoint, health and metrics endpoints, the syslog listeners (when configured), and the
// outlet thread.

#include <cstdio>
#include <memory>
#include <thread>

#include "absl/status/statusor.h"
#include "common/base/clock.h"
#include "common/config/config.h"
#include "common/drain/frontend.h"
#include "common/drain/syslog.h"
#include "common/emit/outlet.h"
#include "common/emit/sink.h"
#include "common/http/server.h"
#include "common/store/memory_store.h"
#include "common/telemetry/metrics.h"

namespace drainmet::standalone {

struct ServiceOptions {
  std::FILE* out = stdout;                   ///< Where stdout tenants' request bodies go.
  std::int64_t shutdown_timeout_ms = 25000;  ///< Flush budget at Stop().
};

/// The running service. Start() returns once it listens; Stop() shuts it down
/// gracefully. Thread-safe: Stop() may be called from any thread, once.
class Service {
 public:
  /// Validates `config`, binds config.listen (over TLS when tls_cert_file and tls_key_file
  /// are set; and config.syslog.listen / tls_listen when set) and starts serving and
  /// emitting. InvalidArgument for a bad config (or an unreadable TLS certificate or key), Unavailable when
  /// an address cannot be bound.
  static absl::StatusOr<std::unique_ptr<Service>> Start(config::Config config, const base::Clock& clock,
                                                        const ServiceOptions& options = {});
  ~Service();

  std::uint16_t port() const { return frontend_->port(); }
  /// Bound port of the syslog TCP listener; 0 when off.
  std::uint16_t syslog_port() const { return syslog_ == nullptr ? 0 : syslog_->tcp_port(); }
  /// Bound port of the syslog TLS listener; 0 when off.
  std::uint16_t syslog_tls_port() const { return syslog_ == nullptr ? 0 : syslog_->tls_port(); }
  telemetry::Metrics& metrics() { return metrics_; }

  /// SIGHUP: re-reads the TLS certificate and key of the drain listener (tls_cert_file,
  /// tls_key_file) and of the syslog TLS listener, each when on. New connections use the
  /// new pair; open ones keep theirs; a pair that does not load is logged and counted
  /// (drainmet_tls_reloads_total{result="error"}) and the old one stays. Returns the first
  /// error. Thread-safe.
  absl::Status ReloadTls();

  /// SIGTERM: marks not ready, stops accepting, lets requests in flight finish, stores every
  /// complete syslog message already read, then flushes every open window to the outputs
  /// (retrying until the shutdown timeout).
  void Stop();

 private:
  Service(std::shared_ptr<const drain::TenantDirectory> directory, const base::Clock& clock,
          const ServiceOptions& options);

  std::shared_ptr<const drain::TenantDirectory> directory_;
  const base::Clock& clock_;
  ServiceOptions options_;
  telemetry::Metrics metrics_;
  store::MemoryStore store_;
  emit::TenantSink sink_;
  emit::Outlet outlet_;
  std::unique_ptr<drain::Frontend> frontend_;
  std::unique_ptr<drain::SyslogListener> syslog_;  // null: no syslog listener configured
  std::jthread outlet_thread_;
  std::atomic<bool> stopped_{false};
};

}  // namespace drainmet::standalone
