// drainmet-config: the config service of the distributed mode (docs/configuration.md
// "Distributed mode: the config service"). Serves one config file over gRPC, reloads it
// when it changes, answers grpc.health.v1; SIGTERM or SIGINT stops it (exit 0).
// Exit status: 0 after a signal, 1 when it cannot start (config, port), 2 for a
// command-line error.

#include <signal.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "CLI/CLI.hpp"
#include "common/health/health_server.h"
#include "common/telemetry/log.h"
#include "services/config/config_service.h"

namespace drainmet::config_service {
namespace {

using telemetry::Level;
using telemetry::Log;

int Run(const std::string& config_path, const std::string& listen, std::int64_t reload_interval_ms,
        const std::string& log_level) {
  telemetry::Level level;
  if (!telemetry::ParseLogLevel(log_level, &level)) {
    Log(Level::kError, "drainmet-config failed",
        {{"error", "--log-level: want debug, info, warn or error, got '" + log_level + "'"}});
    return 2;
  }
  telemetry::SetLogLevel(level);
  health::RouteGrpcLogsToLogfmt();

  // Block the stop signals before any thread starts, so that only sigwait below sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  ConfigServerOptions options;
  options.config_path = config_path;
  options.listen = listen;
  options.reload_interval = std::chrono::milliseconds(reload_interval_ms);
  absl::StatusOr<std::unique_ptr<ConfigServer>> server = ConfigServer::Start(std::move(options));
  if (!server.ok()) {
    Log(Level::kError, "drainmet-config failed", {{"error", server.status().ToString()}});
    return 1;
  }
  // Tests and scripts started with port 0 read the port from this line.
  Log(Level::kInfo, "config service listening",
      {{"listen", listen},
       {"port", std::to_string((*server)->port())},
       {"version", std::to_string((*server)->version())}});

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  Log(Level::kInfo, "signal received; stopping",
      {{"signal", signal_number == SIGTERM ? "SIGTERM" : "SIGINT"}});
  (*server)->Stop();
  Log(Level::kInfo, "config service stopped");
  return 0;
}

}  // namespace
}  // namespace drainmet::config_service

int main(int argc, char** argv) {
  CLI::App app{
      "drainmet-config: serves the drainmet configuration to receivers and outlets over gRPC.\n"
      "See docs/configuration.md."};
  app.set_version_flag("--version", "drainmet-config 0.1.0");
  std::string config_path, listen = "0.0.0.0:7070", log_level = "info";
  std::int64_t reload_interval_ms = 1000;
  app.add_option("--config", config_path, "Config file (YAML or JSON) to serve.")->required();
  app.add_option("--listen", listen, "HOST:PORT of the gRPC server (default 0.0.0.0:7070; port 0: any).");
  app.add_option("--reload-interval-ms", reload_interval_ms,
                 "How often the file is checked for changes, ms (default 1000).")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{3'600'000}));
  app.add_option("--log-level", log_level, "debug, info, warn or error (default info).");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  return drainmet::config_service::Run(config_path, listen, reload_interval_ms, log_level);
}
