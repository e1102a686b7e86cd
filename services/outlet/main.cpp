// drainmet-outlet: leases Redis shards, closes their windows and posts the gauges to
// Librato (docs/architecture.md "Outlet"). Config file as for `drainmet run`.
//   drainmet-outlet (--config FILE | --config-service HOST:PORT [--config FILE])
//                   [--listen HOST:PORT] [--grpc-listen HOST:PORT] [--threads N] [--log-level L]
// SIGTERM/SIGINT: finish the windows in progress, release every lease, exit 0.

#include <signal.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "CLI/CLI.hpp"
#include "common/base/clock.h"
#include "common/base/malloc_tuning.h"
#include "common/config/config.h"
#include "common/health/health_server.h"
#include "common/telemetry/log.h"
#include "services/outlet/service.h"

namespace drainmet::outlet {
namespace {

using telemetry::Level;
using telemetry::Log;

int Fail(const absl::Status& status) {
  Log(Level::kError, "drainmet-outlet failed", {{"error", status.ToString()}});
  return 1;
}

int Run(const std::string& config_path, const std::string& config_service, int config_wait_s,
        const std::string& listen, const std::string& grpc_listen, int threads, const std::string& log_level,
        std::int64_t shutdown_timeout_s) {
  base::TuneMalloc();  // before any thread starts (docs/operations.md "Memory bounds")
  // Block the stop signals before any thread starts, so only sigwait below sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  health::RouteGrpcLogsToLogfmt();

  ServiceOptions options;
  if (!listen.empty()) options.listen = listen;
  options.grpc_listen = grpc_listen;
  options.outlet.threads = threads;
  options.outlet.shutdown_timeout_ms = shutdown_timeout_s * 1000;

  if (!config_service.empty()) {
    telemetry::Level level;
    if (!log_level.empty()) {
      if (!telemetry::ParseLogLevel(log_level, &level))
        return Fail(absl::InvalidArgumentError("--log-level: want debug, info, warn or error, got '" +
                                               log_level + "'"));
      telemetry::SetLogLevel(level);
    }
    FollowOptions follow;
    follow.target = config_service;
    follow.initial_file = config_path;
    follow.first_config_timeout = std::chrono::seconds(config_wait_s);
    absl::StatusOr<std::unique_ptr<Service>> service =
        Service::StartFollowing(std::move(follow), std::move(options), base::SystemClock::Get());
    if (!service.ok()) return Fail(service.status());
    if (log_level.empty() &&
        telemetry::ParseLogLevel((*service)->outlet().CurrentConfig()->log_level, &level))
      telemetry::SetLogLevel(level);
    int signal_number = 0;
    sigwait(&signals, &signal_number);
    Log(Level::kInfo, "signal received", {{"signal", signal_number == SIGTERM ? "SIGTERM" : "SIGINT"}});
    (*service)->Stop();
    return 0;
  }

  absl::StatusOr<config::Config> config = config::LoadConfigFile(config_path, config::ProcessEnv());
  if (!config.ok()) return Fail(config.status());
  telemetry::Level level;
  const std::string& wanted = log_level.empty() ? config->log_level : log_level;
  if (!telemetry::ParseLogLevel(wanted, &level)) {
    return Fail(
        absl::InvalidArgumentError("log_level: want debug, info, warn or error, got '" + wanted + "'"));
  }
  telemetry::SetLogLevel(level);

  absl::StatusOr<std::unique_ptr<Service>> service =
      Service::Start(*std::move(config), std::move(options), base::SystemClock::Get());
  if (!service.ok()) return Fail(service.status());

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  Log(Level::kInfo, "signal received", {{"signal", signal_number == SIGTERM ? "SIGTERM" : "SIGINT"}});
  (*service)->Stop();
  return 0;
}

}  // namespace
}  // namespace drainmet::outlet

int main(int argc, char** argv) {
  CLI::App app{"drainmet-outlet: leases Redis shards and posts their closed windows to Librato."};
  app.set_version_flag("--version", "drainmet-outlet 0.1.0");
  std::string config_path, config_service, listen, log_level;
  std::string grpc_listen = "0.0.0.0:9091";
  int threads = 4;
  int config_wait_s = 10;
  std::int64_t shutdown_timeout_s = 20;
  CLI::Option* config_option = app.add_option(
      "--config", config_path,
      "Config file (YAML or JSON), as for `drainmet run`. With --config-service: the copy used until the "
      "service answers.");
  CLI::Option* service_option = app.add_option("--config-service", config_service,
                                               "HOST:PORT of drainmet-config: follow it (later windows use "
                                               "changed tenants; the last good copy is kept "
                                               "while it is unreachable).");
  app.add_option("--config-wait", config_wait_s,
                 "Seconds to wait at start for the first config from --config-service (default 10).")
      ->check(CLI::Range(1, 3600));
  app.add_option("--listen", listen, "HOST:PORT of /healthz, /readyz, /metrics (default 0.0.0.0:8081).");
  app.add_option(
      "--grpc-listen", grpc_listen,
      "HOST:PORT of grpc.health.v1 (default 0.0.0.0:9091; port 0 picks a free one, logged as grpc=).");
  app.add_option("--threads", threads,
                 "Worker threads (default 4; each works its shards one window at a time, so more threads "
                 "overlap the waits on Redis and the API).")
      ->check(CLI::Range(1, 256));
  app.add_option("--log-level", log_level, "debug, info, warn or error (overrides the config).");
  app.add_option("--shutdown-timeout", shutdown_timeout_s,
                 "Seconds allowed at SIGTERM to finish the windows in progress (default 20).")
      ->check(CLI::PositiveNumber);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (config_option->count() == 0 && service_option->count() == 0) {
    std::fprintf(stderr, "drainmet-outlet: one of --config FILE or --config-service HOST:PORT is required\n");
    return 2;
  }
  return drainmet::outlet::Run(config_path, config_service, config_wait_s, listen, grpc_listen, threads,
                               log_level, shutdown_timeout_s);
}
