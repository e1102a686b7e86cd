#pragma once
// drainmet-outlet's process: the ShardOutlet plus its HTTP endpoints (/healthz, /readyz,
// /metrics) on one listener (issue "Distributed drainmet": every service has them).

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/base/clock.h"
#include "common/config/config.h"
#include "common/http/server.h"
#include "common/telemetry/metrics.h"
#include "services/outlet/outlet.h"

namespace drainmet::outlet {

struct ServiceOptions {
  /// HOST:PORT of the HTTP endpoints (http::ParseListenAddress); port 0 picks a free one.
  std::string listen = "0.0.0.0:8081";
  OutletOptions outlet;
};

/// Routes: GET /healthz 200 "ok" while the process runs; GET /readyz 200 when Redis
/// answered within the last few seconds (ShardOutlet::RedisHealthy), else 503; GET
/// /metrics the Prometheus text (telemetry::Metrics, with drainmet_outlet_* families);
/// anything else 404, non-GET/HEAD 405. Thread-safety: Stop from one thread.
class Service {
 public:
  /// Validates `config`, starts the outlet and the HTTP server, and logs
  /// `msg="drainmet-outlet listening" listen=HOST:PORT` with the bound port.
  /// InvalidArgument for a bad config or listen address; Unavailable when the port is taken.
  static absl::StatusOr<std::unique_ptr<Service>> Start(config::Config config, ServiceOptions options,
                                                        const base::Clock& clock);
  ~Service();  ///< Stop().
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  /// Stops the outlet (finish windows in progress, release leases), then the HTTP server.
  /// Idempotent.
  void Stop();

  std::uint16_t port() const { return server_->port(); }
  ShardOutlet& outlet() { return *outlet_; }
  telemetry::Metrics& metrics() { return metrics_; }

 private:
  Service() = default;
  http::Response Route(const http::Request& request);

  telemetry::Metrics metrics_;
  std::unique_ptr<ShardOutlet> outlet_;
  std::unique_ptr<http::Server> server_;
  std::atomic<bool> stopped_{false};
};

}  // namespace drainmet::outlet
