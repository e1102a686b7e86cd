#pragma once
// drainmet-config: serves one configuration file (docs/configuration.md) to the receivers
// and outlets over gRPC (proto/drainmet/v1/config.proto, ConfigService), reloading it when
// it changes, with the standard grpc.health.v1 health service on the same port.
// gRPC stays inside config_service.cpp; main.cpp and tests include only this header.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/base/clock.h"
#include "common/config/config.h"

namespace drainmet::config_service {

struct ConfigServerOptions {
  /// The configuration file (YAML or JSON). Required.
  std::string config_path;
  /// gRPC listen address, "HOST:PORT" or "[IPv6]:PORT" (config::ParseHostPort); port 0
  /// lets the system choose (see ConfigServer::port()).
  std::string listen = "0.0.0.0:7070";
  /// How often the file is checked for a change (modification time, size and content
  /// hash). > 0.
  std::chrono::milliseconds reload_interval{1000};
  /// Resolves `api_token_env`; unset means config::ProcessEnv().
  config::EnvLookup env;
  /// Source of snapshot versions (Unix milliseconds); null means base::SystemClock.
  const base::Clock* clock = nullptr;
  /// At Stop(), how long RPCs other than Watch (which are ended at once) may take to
  /// finish before they are cancelled.
  std::chrono::milliseconds shutdown_grace{2000};
};

/// The config service: loads the file, serves it, watches it.
///
/// Snapshots: the first valid load is version max(1, now in Unix ms); a later valid file
/// whose content differs (ConfigSnapshot.content_hash) becomes version max(previous + 1,
/// now in Unix ms) and is sent to every Watch stream at once. A file that fails to load
/// (syntax, unknown key, validation, missing) is logged once per distinct content at
/// error level (logfmt: msg="config reload failed" file=... error=...) and the last good
/// snapshot keeps being served. Nothing logged or returned ever holds an API token.
///
/// Health: grpc.health.v1 reports SERVING (for "" and "drainmet.v1.ConfigService") from
/// Start() on (a configuration is loaded by then), NOT_SERVING from Stop() on.
///
/// Thread-safety: every method is thread-safe. gRPC runs the RPCs on its own threads and
/// one thread polls the file.
class ConfigServer {
 public:
  /// Loads `config_path` (its LoadConfigFile error is returned as is, e.g. NotFound or
  /// InvalidArgument naming the file and the key), binds `listen` (InvalidArgument for a
  /// malformed address, Unavailable when the port cannot be bound) and starts serving and
  /// watching the file.
  static absl::StatusOr<std::unique_ptr<ConfigServer>> Start(ConfigServerOptions options);

  /// Stop()s.
  ~ConfigServer();
  ConfigServer(const ConfigServer&) = delete;
  ConfigServer& operator=(const ConfigServer&) = delete;

  /// The bound TCP port (the chosen one when `listen` had port 0).
  std::uint16_t port() const;

  /// The version being served (ConfigSnapshot.version), >= 1.
  std::uint64_t version() const;

  /// The content hash being served (ConfigSnapshot.content_hash).
  std::string content_hash() const;

  /// Health NOT_SERVING, ends every Watch stream (UNAVAILABLE), stops accepting RPCs,
  /// waits up to `shutdown_grace` for the others, stops the file watcher. Idempotent.
  void Stop();

 private:
  struct Impl;
  explicit ConfigServer(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

}  // namespace drainmet::config_service
