#pragma once
// The HTTP face of every process that takes drains (standalone, receiver): POST /logs
// through a DrainHandler, GET /healthz, /readyz and /metrics, 404 and 405 otherwise.

#include <atomic>
#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "common/drain/handler.h"
#include "common/http/server.h"

namespace drainmet::drain {

/// Thread-safe: the server's threads route requests; Stop() may come from any thread.
class Frontend {
 public:
  /// Extra readiness condition (e.g. "Redis answers"); /readyz is 200 only while the
  /// frontend runs and this returns true. Called on a server thread; must be cheap.
  using ReadyCheck = std::function<bool()>;

  /// Binds directory->config.listen with the config's limits (body and header bytes,
  /// read timeout, threads) and TLS files (tls_cert_file, tls_key_file; both empty: plain
  /// HTTP) and starts serving. `store`, `clock` and `metrics` must outlive the frontend.
  /// InvalidArgument for a bad listen address or a TLS pair that does not load,
  /// Unavailable when it cannot be bound.
  static absl::StatusOr<std::unique_ptr<Frontend>> Start(std::shared_ptr<const TenantDirectory> directory,
                                                         store::Store& store, const base::Clock& clock,
                                                         telemetry::Metrics& metrics,
                                                         ReadyCheck ready = nullptr);
  /// As above with a swappable directory (a receiver following the config service): the
  /// listener and server limits come from `holder->Get()` now and stay for the frontend's
  /// life (a later Set changes tenants, tokens and the handler's limits only). `holder`
  /// must not be null.
  static absl::StatusOr<std::unique_ptr<Frontend>> Start(std::shared_ptr<DirectoryHolder> holder,
                                                         store::Store& store, const base::Clock& clock,
                                                         telemetry::Metrics& metrics,
                                                         ReadyCheck ready = nullptr);
  ~Frontend();

  std::uint16_t port() const { return server_->port(); }
  /// SIGHUP: re-reads config tls_cert_file / tls_key_file (http::Server::ReloadTls).
  absl::Status ReloadTls() { return server_->ReloadTls(); }

  /// /readyz turns 503, the listener closes, requests in flight finish and are answered.
  /// Idempotent.
  void Stop();

 private:
  Frontend(std::shared_ptr<DirectoryHolder> holder, store::Store& store, const base::Clock& clock,
           telemetry::Metrics& metrics, ReadyCheck ready);
  /// Routes one request; POST /logs is answered asynchronously (DrainHandler::HandleAsync).
  void Route(const http::Request& request, http::Responder respond);
  /// The answer to a request for another path than the drain's.
  http::Response Route(const http::Request& request);

  telemetry::Metrics& metrics_;
  DrainHandler handler_;
  ReadyCheck ready_check_;
  std::unique_ptr<http::Server> server_;
  std::atomic<bool> serving_{false};
};

}  // namespace drainmet::drain
