#pragma once
// drainmet-outlet's process: the ShardOutlet plus its HTTP endpoints (/healthz, /readyz,
// /metrics) on one listener and grpc.health.v1 on a gRPC port (issue "Distributed
// drainmet": every service has them).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "common/base/clock.h"
#include "common/config/config.h"
#include "common/config/watcher.h"
#include "common/health/health_server.h"
#include "common/http/server.h"
#include "common/telemetry/metrics.h"
#include "services/outlet/outlet.h"

namespace drainmet::outlet {

/// The grpc.health.v1 service name of an outlet (besides "").
inline constexpr char kHealthServiceName[] = "drainmet.v1.Outlet";

struct ServiceOptions {
  /// HOST:PORT of the HTTP endpoints (http::ParseListenAddress); port 0 picks a free one.
  std::string listen = "0.0.0.0:8081";
  /// gRPC listen address of grpc.health.v1, "HOST:PORT" or "[IPv6]:PORT"; port 0 picks a
  /// free port (Service::grpc_port()). The binary's --grpc-listen defaults to 0.0.0.0:9091;
  /// this default keeps in-process outlets (tests) off fixed ports.
  std::string grpc_listen = "127.0.0.1:0";
  OutletOptions outlet;
};

/// How an outlet follows drainmet-config (issue "Distributed drainmet": outlets keep the
/// last good copy while the service is unreachable).
struct FollowOptions {
  /// gRPC target of drainmet-config ("HOST:PORT", "dns:///name:port"). Required.
  std::string target;
  /// Optional config file used until the service answers (ConfigWatcherOptions initial_file).
  std::string initial_file;
  /// Bound of the wait for the first configuration (when there is no initial file).
  std::chrono::milliseconds first_config_timeout{10000};
  /// Applied to every copy before use (command-line overrides). Optional.
  std::function<void(config::Config&)> adjust;
  /// Reconnection backoff of the watcher (ConfigWatcherOptions).
  std::chrono::milliseconds initial_backoff{200};
  std::chrono::milliseconds max_backoff{5000};
};

/// Routes: GET /healthz 200 "ok" while the process runs; GET /readyz 200 when Redis
/// answered within the last few seconds (ShardOutlet::RedisHealthy), else 503; GET
/// /metrics the Prometheus text (telemetry::Metrics, with drainmet_outlet_* families);
/// anything else 404, non-GET/HEAD 405.
///
/// grpc.health.v1, for "" and kHealthServiceName: SERVING while ShardOutlet::RedisHealthy()
/// (checked every 200 ms) and Stop() has not begun; NOT_SERVING otherwise, and for good
/// from Stop() on. Any other name answers NOT_FOUND.
///
/// Thread-safety: Stop from one thread.
class Service {
 public:
  /// Validates `config`, starts the gRPC health server, the HTTP server and the outlet, and
  /// logs `msg="drainmet-outlet listening" listen=HOST:PORT owner=... grpc=HOST:PORT` with
  /// the bound ports. InvalidArgument for a bad config or listen address; Unavailable when a
  /// port is taken ("cannot listen for gRPC on HOST:PORT" for the gRPC one).
  static absl::StatusOr<std::unique_ptr<Service>> Start(config::Config config, ServiceOptions options,
                                                        const base::Clock& clock);

  /// Follows the config service: starts a config::ConfigWatcher, waits up to
  /// `follow.first_config_timeout` for a configuration (DeadlineExceeded naming the target
  /// and the last error otherwise), starts as Start() does, then hands each later change of
  /// content to ShardOutlet::UpdateConfig (later windows use the new tenants). While the
  /// service is unreachable the last good copy stays in use.
  static absl::StatusOr<std::unique_ptr<Service>> StartFollowing(FollowOptions follow, ServiceOptions options,
                                                                 const base::Clock& clock);
  ~Service();  ///< Stop().
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  /// grpc.health.v1 NOT_SERVING for good, then stops the outlet (finish windows in
  /// progress, release leases), then the HTTP server and the gRPC server (health RPCs in
  /// flight get up to 1 s). Idempotent.
  void Stop();

  /// The bound HTTP port.
  std::uint16_t port() const { return server_->port(); }
  /// The bound gRPC (grpc.health.v1) port.
  std::uint16_t grpc_port() const { return health_->port(); }
  ShardOutlet& outlet() { return *outlet_; }
  telemetry::Metrics& metrics() { return metrics_; }

  /// The config service's version of the copy in use; 0 for a local file.
  std::uint64_t config_version() const { return config_version_.load(); }

 private:
  Service() = default;
  http::Response Route(const http::Request& request);
  /// on_change of the watcher: adjust, UpdateConfig, remember the version (log on error).
  void OnServed(const config::ServedConfig& served);

  std::function<void(config::Config&)> adjust_;
  std::mutex apply_mu_;       // Serialises OnServed.
  std::string applied_hash_;  // guarded by apply_mu_
  std::atomic<std::uint64_t> config_version_{0};
  std::unique_ptr<config::ConfigWatcher> watcher_;

  telemetry::Metrics metrics_;
  std::unique_ptr<ShardOutlet> outlet_;
  std::unique_ptr<http::Server> server_;
  std::unique_ptr<health::HealthServer> health_;
  /// Sets health_ from outlet_->RedisHealthy() every 200 ms; started last in Start().
  std::jthread health_poller_;
  std::atomic<bool> stopped_{false};
};

}  // namespace drainmet::outlet
