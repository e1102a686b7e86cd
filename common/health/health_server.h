#pragma once
// The grpc.health.v1 face of the distributed services (issue "Distributed drainmet": every
// service answers grpc.health.v1, SERVING only when its dependencies are): a gRPC server
// running gRPC's built-in health service (health.proto of the grpc-proto package), with one
// status for "" and for each named service, set by the owning service as its dependencies
// come and go. gRPC's headers stay in health_server.cpp; the forward declarations below only
// let drainmet-config serve its own service on the same port.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace grpc {
class Service;
class ServerBuilder;
}  // namespace grpc

namespace drainmet::health {

struct HealthServerOptions {
  /// gRPC listen address, "HOST:PORT" or "[IPv6]:PORT" (config::ParseHostPort); port 0
  /// lets the system choose (see HealthServer::port()). Required.
  std::string listen;
  /// Names answered besides "" (e.g. "drainmet.v1.Receiver"), all with the same status.
  /// grpc.health.v1 Check for any other name answers NOT_FOUND.
  std::vector<std::string> service_names;
  /// Status of "" and every name once started.
  bool initially_serving = false;
  /// More services served on the same port. Not owned: each must outlive the server.
  std::vector<grpc::Service*> services;
  /// Called with the builder before it starts (channel arguments). Optional.
  std::function<void(grpc::ServerBuilder&)> configure;
};

/// A started gRPC server with the health service. Thread-safe: every method may be called
/// from any thread.
///
/// Status lifecycle: `initially_serving` at Start(); SetServing() changes it; ShutdownHealth()
/// (or Stop()) makes it NOT_SERVING for good. Watch streams of grpc.health.v1 see every change.
class HealthServer {
 public:
  /// Binds `options.listen` and serves. InvalidArgument "gRPC listen address "X": WHY" for a
  /// malformed address; Unavailable "cannot listen for gRPC on X" when gRPC cannot bind it
  /// (port taken, address not local). A taken port is never shared (SO_REUSEPORT off).
  /// For a few microseconds after the bind, before the first status is set, "" reads SERVING
  /// (gRPC's default for it).
  static absl::StatusOr<std::unique_ptr<HealthServer>> Start(HealthServerOptions options);

  /// Stop(0).
  ~HealthServer();
  HealthServer(const HealthServer&) = delete;
  HealthServer& operator=(const HealthServer&) = delete;

  /// The bound TCP port (the chosen one when `listen` had port 0).
  std::uint16_t port() const { return port_; }
  /// `listen` with the bound port ("0.0.0.0:9090", "[::1]:41234"), for logs.
  const std::string& address() const { return address_; }

  /// SERVING (true) or NOT_SERVING (false) for "" and every name. Ignored after
  /// ShutdownHealth(); a call that repeats the current status changes nothing (no Watch
  /// update).
  void SetServing(bool serving);
  /// The status last set (false after ShutdownHealth()).
  bool serving() const;

  /// NOT_SERVING for "" and every name, for good; the server keeps answering (a draining
  /// service says so to its probes). Idempotent.
  void ShutdownHealth();

  /// ShutdownHealth(), then stops accepting RPCs, lets those in flight run up to `grace`
  /// (health Watch streams are then cancelled) and waits for them. Idempotent: a second
  /// call returns at once.
  void Stop(std::chrono::milliseconds grace);

 private:
  struct Impl;
  HealthServer(std::unique_ptr<Impl> impl, std::uint16_t port, std::string address);

  std::unique_ptr<Impl> impl_;
  const std::uint16_t port_;
  const std::string address_;
};

/// Routes gRPC's own log lines (gpr_log) to telemetry::Log as logfmt (`msg=grpc
/// message=... where=FILE:LINE`), so that stderr stays one format. gRPC's errors are mostly
/// transient (a port taken, a peer gone) and the service logs its own verdict, hence they are
/// logged at warn; gRPC's info at info, its debug at debug. Process-wide; call once from
/// main() before gRPC starts.
void RouteGrpcLogsToLogfmt();

}  // namespace drainmet::health
